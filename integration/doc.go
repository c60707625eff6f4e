// Package integration tests resilient against real TCP faults: a fault
// matrix through an embedded Toxiproxy and the resilienttest kit, hostile
// servers, and a soak run (build tag soak). Each fault of the matrix names
// the class of the attempts it fails (not sent, declined, ambiguous, as in
// DESIGN.md "Retry safety"), and the class table, written out in the test,
// decides each cell's expected outcome, attempts and arrivals; the README's
// "The fault matrix" has the table of them. It is its own module so
// Toxiproxy and what it pulls in never enter resilient's go.mod.
package integration
