// Package integration tests resilient against real TCP faults: a fault
// matrix through an embedded Toxiproxy and the resilienttest kit, hostile
// servers, and a soak run (build tag soak). It is its own module so
// Toxiproxy and what it pulls in never enter resilient's go.mod.
package integration
