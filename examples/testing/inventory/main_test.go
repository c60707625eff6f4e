package inventory_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind, such as a
// request still held by a hung fake server.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
