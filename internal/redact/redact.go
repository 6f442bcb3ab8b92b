// Package redact hides secrets in what is logged or printed.
package redact

import "strings"

// URL hides the password of a URL or DSN ("amqp://guest:***@host/"); a
// string without one is returned as it is.
func URL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		if at := strings.LastIndex(s, "@"); at > i {
			userinfo := s[i+3 : at]
			if c := strings.Index(userinfo, ":"); c >= 0 {
				return s[:i+3] + userinfo[:c] + ":***" + s[at:]
			}
		}
	}
	return s
}
