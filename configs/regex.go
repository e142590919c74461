package configs

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// regexToGlob translates the common shapes of RabbitMQ's permission and policy patterns,
// which are unanchored regular expressions, into a glob matched against the whole name
// (see Pattern): "^foo\.bar$" is "foo.bar", "^foo" is "foo*", "foo" is "*foo*", ".*" is
// "*", "." is "?", "^(a|b)$" is "{a,b}", and "" and "^$" are "" (nothing). It refuses
// anything else (classes, repetition other than ".*", nested groups, escapes such as \d).
func regexToGlob(re string) (string, error) {
	if re == "" || re == "^$" {
		return "", nil
	}
	fail := fmt.Errorf("cannot translate regular expression %q to a glob; write the pattern by hand", re)
	if !utf8.ValidString(re) {
		return "", fail
	}
	body := re
	start := strings.HasPrefix(body, "^")
	body = strings.TrimPrefix(body, "^")
	end := strings.HasSuffix(body, "$") && !strings.HasSuffix(body, `\$`)
	if end {
		body = strings.TrimSuffix(body, "$")
	}
	var sb strings.Builder
	inGroup, groups := false, 0
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch c {
		case '\\':
			if i+1 == len(body) {
				return "", fail
			}
			i++
			e := body[i]
			if e >= 'a' && e <= 'z' || e >= 'A' && e <= 'Z' || e >= '0' && e <= '9' {
				return "", fail // \d, \w, \b, back-references: no glob equivalent
			}
			writeGlobLiteral(&sb, e, inGroup)
		case '.':
			if i+1 < len(body) && body[i+1] == '*' {
				i++
				sb.WriteByte('*')
			} else {
				sb.WriteByte('?')
			}
		case '(':
			if inGroup || groups > 0 {
				return "", fail
			}
			if strings.HasPrefix(body[i:], "(?:") {
				i += 2
			}
			inGroup = true
			groups++
			sb.WriteByte('{')
		case ')':
			if !inGroup {
				return "", fail
			}
			inGroup = false
			sb.WriteByte('}')
		case '|':
			if !inGroup {
				return "", fail
			}
			sb.WriteByte(',')
		case '[', ']', '{', '}', '*', '+', '?', '^', '$':
			return "", fail
		default:
			writeGlobLiteral(&sb, c, inGroup)
		}
	}
	if inGroup {
		return "", fail
	}
	g := sb.String()
	if !start && !strings.HasPrefix(g, "*") {
		g = "*" + g
	}
	if !end && !strings.HasSuffix(g, "*") || g == "" {
		g += "*"
	}
	return g, nil
}

// writeGlobLiteral writes c so that the glob matches it literally.
func writeGlobLiteral(sb *strings.Builder, c byte, inGroup bool) {
	if strings.IndexByte(`*?[]{}\`, c) >= 0 || inGroup && c == ',' {
		sb.WriteByte('\\')
	}
	sb.WriteByte(c)
}

// RegexToGlob translates a RabbitMQ permission or policy pattern (an unanchored regular
// expression) into Warren's glob (see Pattern), or says why it cannot be honoured exactly.
func RegexToGlob(re string) (string, error) { return regexToGlob(re) }

// GlobToRegex is a regular expression matching exactly what glob g matches, for showing
// Warren's patterns where RabbitMQ's clients expect regular expressions: "*" is ".*",
// "foo*" is "^foo.*$" and "" (nothing) is "^$". Character classes are copied as they are.
func GlobToRegex(g string) string {
	switch g {
	case "":
		return "^$"
	case "*":
		return ".*"
	}
	var sb strings.Builder
	sb.WriteByte('^')
	inAlt := false
	for i := 0; i < len(g); i++ {
		c := g[i]
		switch {
		case c == '\\' && i+1 < len(g):
			i++
			sb.WriteString(regexQuote(g[i]))
		case c == '*':
			sb.WriteString(".*")
		case c == '?':
			sb.WriteByte('.')
		case c == '{':
			inAlt = true
			sb.WriteString("(?:")
		case c == '}' && inAlt:
			inAlt = false
			sb.WriteByte(')')
		case c == ',' && inAlt:
			sb.WriteByte('|')
		case c == '[':
			j := strings.IndexByte(g[i:], ']')
			if j < 0 {
				sb.WriteString(`\[`)
				continue
			}
			class := g[i+1 : i+j]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			sb.WriteString("[" + class + "]")
			i += j
		default:
			sb.WriteString(regexQuote(c))
		}
	}
	sb.WriteByte('$')
	return sb.String()
}

// regexQuote is c as a regular expression matching it literally.
func regexQuote(c byte) string {
	if strings.IndexByte(`\.+*?()|[]{}^$`, c) >= 0 {
		return `\` + string(c)
	}
	return string(c)
}
