package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sagaflow/sagaflow/events"
)

// minorDigits are the currencies whose minor unit is not a hundredth
// (ISO 4217); every other currency has two decimals.
var minorDigits = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
	"PYG": 0, "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}

func decimalsOf(currency string) int {
	if d, ok := minorDigits[currency]; ok {
		return d
	}
	return 2
}

// parseCurrency checks an ISO 4217 code: three upper-case letters.
func parseCurrency(s string) (string, error) {
	if len(s) != 3 || strings.ToUpper(s) != s || strings.IndexFunc(s, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return "", usagef("currency %q: want three upper-case letters such as EUR", s)
	}
	return s, nil
}

// parseAmount reads a positive amount of currency: an integer is in minor
// units ("1250" is 12.50 EUR), a decimal is in major units and must have
// at most the currency's decimals ("12.50", "12.5"). It never goes through
// a float, so the result is exact.
func parseAmount(s, currency string) (int64, error) {
	n, err := parseMinor(s, currency)
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, usagef("amount %q: must be positive", s)
	}
	return n, nil
}

// parseMinor is parseAmount without the sign check; zero and negative
// amounts are returned as such.
func parseMinor(s, currency string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, usagef("amount is required")
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	neg := strings.HasPrefix(whole, "-")
	digits := strings.TrimPrefix(strings.TrimPrefix(whole, "-"), "+")
	if digits == "" && !hasDot || !allDigits(digits) || hasDot && (frac == "" || !allDigits(frac)) {
		return 0, usagef("amount %q: want minor units (1250) or a decimal (12.50)", s)
	}
	if !hasDot {
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil {
			return 0, usagef("amount %q: out of range", s)
		}
		if neg {
			n = -n
		}
		return n, nil
	}
	dec := decimalsOf(currency)
	if len(frac) > dec {
		return 0, usagef("amount %q: %s has %d decimals", s, currency, dec)
	}
	frac += strings.Repeat("0", dec-len(frac))
	if digits == "" {
		digits = "0"
	}
	w, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, usagef("amount %q: out of range", s)
	}
	f, _ := strconv.ParseInt("0"+frac, 10, 64)
	scale := int64(math.Pow10(dec))
	if w > (math.MaxInt64-f)/scale {
		return 0, usagef("amount %q: out of range", s)
	}
	n := w*scale + f
	if neg {
		n = -n
	}
	return n, nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// formatMoney shows minor units as a decimal with the currency: 1250 EUR
// is "12.50 EUR".
func formatMoney(amount int64, currency string) string {
	dec := decimalsOf(currency)
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	if dec == 0 {
		return fmt.Sprintf("%s%d %s", sign, amount, currency)
	}
	scale := int64(math.Pow10(dec))
	return fmt.Sprintf("%s%d.%0*d %s", sign, amount/scale, dec, amount%scale, currency)
}

// parseOrderLine reads "sku:qty:unit-price", the price in minor units or as
// a decimal of currency.
func parseOrderLine(s, currency string) (events.OrderLine, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return events.OrderLine{}, usagef("line %q: want sku:quantity:unit-price, e.g. apple:2:150", s)
	}
	sku, err := parseSKU(parts[0], s)
	if err != nil {
		return events.OrderLine{}, err
	}
	qty, err := parseQuantity(parts[1], s)
	if err != nil {
		return events.OrderLine{}, err
	}
	price, err := parseMinor(parts[2], currency)
	if err != nil {
		return events.OrderLine{}, usagef("line %q: unit price: %v", s, err)
	}
	if price <= 0 {
		return events.OrderLine{}, usagef("line %q: unit price must be positive", s)
	}
	return events.OrderLine{SKU: sku, Quantity: qty, UnitPrice: price}, nil
}

// parseStockLine reads "sku:qty".
func parseStockLine(s string) (events.StockLine, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 2 {
		return events.StockLine{}, usagef("line %q: want sku:quantity, e.g. apple:2", s)
	}
	sku, err := parseSKU(parts[0], s)
	if err != nil {
		return events.StockLine{}, err
	}
	qty, err := parseQuantity(parts[1], s)
	if err != nil {
		return events.StockLine{}, err
	}
	return events.StockLine{SKU: sku, Quantity: qty}, nil
}

func parseSKU(sku, line string) (string, error) {
	sku = strings.TrimSpace(sku)
	if sku == "" {
		return "", usagef("line %q: sku is empty", line)
	}
	return sku, nil
}

func parseQuantity(s, line string) (int64, error) {
	q, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, usagef("line %q: quantity %q is not a whole number", line, s)
	}
	if q <= 0 {
		return 0, usagef("line %q: quantity must be positive", line)
	}
	return q, nil
}

// orderTotal sums the lines, failing on overflow.
func orderTotal(lines []events.OrderLine) (int64, error) {
	var total int64
	for _, l := range lines {
		if l.UnitPrice > 0 && l.Quantity > math.MaxInt64/l.UnitPrice || total > math.MaxInt64-l.Quantity*l.UnitPrice {
			return 0, usagef("order total overflows")
		}
		total += l.Quantity * l.UnitPrice
	}
	return total, nil
}
