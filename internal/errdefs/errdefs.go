// Package errdefs holds the error kinds that domain packages return and that
// the CRI layer maps to gRPC status codes in one place. Domain code wraps them
// with fmt.Errorf("...: %w", errdefs.ErrNotFound) so messages stay specific.
package errdefs

import "errors"

var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrDeadlineExceeded   = errors.New("deadline exceeded")
	// ErrResourceExhausted is a configured limit reached (e.g. a layer
	// larger than images.max_layer_unpacked_bytes).
	ErrResourceExhausted = errors.New("resource exhausted")
)

// Invalid returns an InvalidArgument error with the given message.
func Invalid(msg string) error { return &kindError{msg: msg, kind: ErrInvalidArgument} }

// NotFound returns a NotFound error with the given message.
func NotFound(msg string) error { return &kindError{msg: msg, kind: ErrNotFound} }

// Precondition returns a FailedPrecondition error with the given message.
func Precondition(msg string) error { return &kindError{msg: msg, kind: ErrFailedPrecondition} }

// Exhausted returns a ResourceExhausted error with the given message.
func Exhausted(msg string) error { return &kindError{msg: msg, kind: ErrResourceExhausted} }

// Exists returns an AlreadyExists error with the given message.
func Exists(msg string) error { return &kindError{msg: msg, kind: ErrAlreadyExists} }

// kindError carries a message of its own (no "invalid argument: " suffix
// noise) while still matching its kind with errors.Is.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

func IsNotFound(err error) bool      { return errors.Is(err, ErrNotFound) }
func IsInvalid(err error) bool       { return errors.Is(err, ErrInvalidArgument) }
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }
