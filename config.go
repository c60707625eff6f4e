package resilient

import (
	"fmt"
	"time"
)

// fieldError is a policy field out of range, named as in Go
// ("RetryPolicy.MaxAttempts"). The policies' check methods return it, so
// each rule is written once: the stage constructors and With... options
// panic with its text (a bad policy in code is the programmer's mistake,
// found at construction), and Config.Options returns it under the field's
// config name (a config file is input, and input gets an error).
type fieldError struct {
	field string // "RetryPolicy.MaxAttempts"
	msg   string // "must not be negative, got -2"
}

func (e *fieldError) Error() string { return "resilient: " + e.field + " " + e.msg }

// mustValid panics with err's text, a string as the policies always have.
func mustValid(err error) {
	if err != nil {
		panic(err.Error())
	}
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func notNegative[T int | time.Duration](field string, v T) error {
	if v < 0 {
		return &fieldError{field, fmt.Sprint("must not be negative, got ", v)}
	}
	return nil
}
