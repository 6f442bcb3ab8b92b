package events

import (
	"errors"
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"
)

// Limits every payload is validated against. They keep one message small and
// its identifiers printable, so a hostile or buggy producer cannot make a
// consumer allocate without bound or log control sequences.
const (
	// MaxIDLength is the longest identifier (order, account, sku, ...) in runes.
	MaxIDLength = 200
	// MaxTextLength is the longest free text (reasons, messages) in runes.
	MaxTextLength = 1000
	// MaxCodeLength is the longest machine-readable reason code in bytes.
	MaxCodeLength = 64
	// MaxLines is the most lines an order or a reservation may have.
	MaxLines = 1000
)

// validator collects field problems so that one Validate call reports all of
// them, not only the first.
type validator struct {
	errs []error
}

func (v *validator) add(field, problem string) {
	v.errs = append(v.errs, &FieldError{Field: field, Problem: problem})
}

func (v *validator) addf(field, format string, args ...any) {
	v.add(field, fmt.Sprintf(format, args...))
}

func (v *validator) err() error {
	return errors.Join(v.errs...)
}

// path joins a parent path and a field name into a JSON path.
func path(parent, field string) string {
	if parent == "" {
		return field
	}
	return parent + "." + field
}

// index names element i of the list at parent, such as "lines[2]".
func index(parent string, i int) string {
	return fmt.Sprintf("%s[%d]", parent, i)
}

// id checks a required identifier: non-empty, at most MaxIDLength runes,
// valid UTF-8 and free of control characters.
func (v *validator) id(field, s string) {
	if s == "" {
		v.add(field, "required")
		return
	}
	v.printable(field, s, MaxIDLength, false)
}

// required checks only that s is set; the queries take their identifiers
// as they come, because a query changes nothing.
func (v *validator) required(field, s string) {
	if s == "" {
		v.add(field, "required")
	}
}

// optionalID checks an identifier that may be empty.
func (v *validator) optionalID(field, s string) {
	if s != "" {
		v.id(field, s)
	}
}

// text checks free text: at most MaxTextLength runes, valid UTF-8, no control
// characters but tab and newline.
func (v *validator) text(field, s string, required bool) {
	if s == "" {
		if required {
			v.add(field, "required")
		}
		return
	}
	v.printable(field, s, MaxTextLength, true)
}

func (v *validator) printable(field, s string, maxRunes int, allowWhitespaceControls bool) {
	if !utf8.ValidString(s) {
		v.add(field, "must be valid UTF-8")
		return
	}
	if n := utf8.RuneCountInString(s); n > maxRunes {
		v.addf(field, "must be at most %d characters, got %d", maxRunes, n)
		return
	}
	for _, r := range s {
		if allowWhitespaceControls && (r == '\n' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) {
			v.add(field, "must not contain control characters")
			return
		}
	}
}

// code checks a machine-readable code such as "insufficient_funds": lower-case
// ASCII letters, digits and underscores, starting with a letter.
func (v *validator) code(field, s string, required bool) {
	if s == "" {
		if required {
			v.add(field, "required")
		}
		return
	}
	if !isCode(s) {
		v.addf(field, "must be a lower-case code of at most %d characters like \"insufficient_funds\"", MaxCodeLength)
	}
}

func isCode(s string) bool {
	if len(s) == 0 || len(s) > MaxCodeLength || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// currency checks an ISO 4217 style code: three upper-case ASCII letters.
func (v *validator) currency(field, s string) {
	if s == "" {
		v.add(field, "required")
		return
	}
	if !isCurrency(s) {
		v.add(field, "must be three upper-case letters (ISO 4217)")
	}
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// positive checks that n > 0.
func (v *validator) positive(field string, n int64) {
	if n <= 0 {
		v.add(field, "must be positive")
	}
}

// positiveMoney checks a Money whose amount must be positive.
func (v *validator) positiveMoney(field string, m Money) {
	v.positive(path(field, "amount"), m.Amount)
	v.currency(path(field, "currency"), m.Currency)
}

// nonNegativeMoney checks a Money that may be zero, such as a balance.
func (v *validator) nonNegativeMoney(field string, m Money) {
	if m.Amount < 0 {
		v.add(path(field, "amount"), "must not be negative")
	}
	v.currency(path(field, "currency"), m.Currency)
}

// sameCurrency checks that two amounts of one payload agree on the currency.
func (v *validator) sameCurrency(field string, a, b Money) {
	if isCurrency(a.Currency) && isCurrency(b.Currency) && a.Currency != b.Currency {
		v.addf(path(field, "currency"), "must be %s like the amount, got %s", a.Currency, b.Currency)
	}
}

// distinct checks that two identifiers differ, for transfers whose source and
// target must not be one account.
func (v *validator) distinct(field, a, otherField, b string) {
	if a != "" && a == b {
		v.addf(field, "must differ from %s", otherField)
	}
}

// stockLines checks a non-empty list of at most MaxLines stock lines.
func (v *validator) stockLines(field string, lines []StockLine, required bool) {
	if !v.lineCount(field, len(lines), required) {
		return
	}
	for i, l := range lines {
		p := index(field, i)
		v.id(path(p, "sku"), l.SKU)
		v.positive(path(p, "quantity"), l.Quantity)
	}
}

// lineCount checks the number of lines and reports whether to look at them.
func (v *validator) lineCount(field string, n int, required bool) bool {
	switch {
	case n == 0 && required:
		v.add(field, "must have at least one line")
		return false
	case n > MaxLines:
		v.addf(field, "must have at most %d lines, got %d", MaxLines, n)
		return false
	}
	return true
}

// mulAdd returns sum + a*b and whether it stayed within int64, for
// non-negative operands.
func mulAdd(sum, a, b int64) (int64, bool) {
	if a < 0 || b < 0 || sum < 0 {
		return 0, false
	}
	if a != 0 && b > math.MaxInt64/a {
		return 0, false
	}
	p := a * b
	if sum > math.MaxInt64-p {
		return 0, false
	}
	return sum + p, true
}

// Money is an amount in integer minor units (cents for EUR and USD) with its
// ISO 4217 currency. Money is never a float, so sums and comparisons are exact.
type Money struct {
	// Amount is in minor units of Currency: 1050 with "EUR" is 10.50 EUR.
	Amount int64 `json:"amount"`
	// Currency is the ISO 4217 code: three upper-case letters.
	Currency string `json:"currency"`
}

// Validate reports whether m is a positive amount in a well-formed currency,
// naming the failing field ("amount: must be positive").
func (m Money) Validate() error {
	var v validator
	v.positiveMoney("", m)
	return v.err()
}

// String formats m as "1050 EUR" (minor units), never as a float.
func (m Money) String() string {
	return fmt.Sprintf("%d %s", m.Amount, m.Currency)
}
