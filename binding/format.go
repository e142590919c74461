package binding

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/warrenmq/warren/amqpwire"
)

// TypeName returns the name RabbitMQ gives a decoded field value's type in its reply texts
// ("longstr", "signedint", "long", "bool", ...), or "unknown".
func TypeName(v any) string {
	switch amqpwire.TypeOf(v) {
	case 't':
		return "bool"
	case 'b':
		return "byte"
	case 'B':
		return "unsignedbyte"
	case 's':
		return "short"
	case 'u':
		return "unsignedshort"
	case 'I':
		return "signedint"
	case 'i':
		return "unsignedint"
	case 'l':
		return "long"
	case 'f':
		return "float"
	case 'd':
		return "double"
	case 'D':
		return "decimal"
	case 'S':
		return "longstr"
	case 'x':
		return "binary"
	case 'A':
		return "array"
	case 'T':
		return "timestamp"
	case 'F':
		return "table"
	case 'V':
		return "void"
	}
	return "unknown"
}

// FormatValue formats a decoded field value the way RabbitMQ prints the Erlang term it decodes
// to (io_lib's ~tp), as in its reply texts: <<"text">> for strings and byte arrays, 42, 1.5,
// true, undefined for void, {Scale,Value} for a decimal, the seconds for a timestamp, and lists
// of {Type,Value} or {<<"key">>,Type,Value} for arrays and tables.
func FormatValue(v any) string {
	var b strings.Builder
	writeTerm(&b, v)
	return b.String()
}

func writeTerm(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("undefined")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case int8:
		b.WriteString(strconv.FormatInt(int64(v), 10))
	case uint8:
		b.WriteString(strconv.FormatUint(uint64(v), 10))
	case int16:
		b.WriteString(strconv.FormatInt(int64(v), 10))
	case uint16:
		b.WriteString(strconv.FormatUint(uint64(v), 10))
	case int32:
		b.WriteString(strconv.FormatInt(int64(v), 10))
	case uint32:
		b.WriteString(strconv.FormatUint(uint64(v), 10))
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case int:
		b.WriteString(strconv.Itoa(v))
	case float32:
		b.WriteString(formatFloat(float64(v)))
	case float64:
		b.WriteString(formatFloat(v))
	case amqpwire.Decimal:
		// RabbitMQ decodes 'D' as {Scale, Value} with Value unsigned.
		b.WriteString("{" + strconv.Itoa(int(v.Scale)) + "," + strconv.FormatUint(uint64(uint32(v.Value)), 10) + "}")
	case string:
		writeBinary(b, v)
	case []byte:
		writeBinary(b, string(v))
	case time.Time:
		b.WriteString(strconv.FormatInt(v.Unix(), 10))
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("{" + TypeName(e) + ",")
			writeTerm(b, e)
			b.WriteByte('}')
		}
		b.WriteByte(']')
	case amqpwire.Table:
		b.WriteByte('[')
		i := 0
		err := v.Each(func(k string, e any) error {
			if i > 0 {
				b.WriteByte(',')
			}
			i++
			b.WriteByte('{')
			writeBinary(b, k)
			b.WriteString("," + TypeName(e) + ",")
			writeTerm(b, e)
			b.WriteByte('}')
			return nil
		})
		if err != nil {
			b.WriteString("...")
		}
		b.WriteByte(']')
	default:
		b.WriteString("unknown")
	}
}

// writeBinary writes an Erlang binary as RabbitMQ's reply texts show it: <<"abc">> when the
// bytes are printable UTF-8 (RabbitMQ 3.10 prints <<"é">>, without /utf8), else the byte values.
func writeBinary(b *strings.Builder, s string) {
	printable := utf8.ValidString(s)
	for _, r := range s {
		if !unicode.IsPrint(r) && r != '\n' && r != '\t' {
			printable = false
			break
		}
	}
	b.WriteString("<<")
	if !printable {
		for i := 0; i < len(s); i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(int(s[i])))
		}
	} else if s != "" {
		b.WriteByte('"')
		for _, r := range s {
			switch r {
			case '"', '\\':
				b.WriteByte('\\')
				b.WriteRune(r)
			case '\n':
				b.WriteString(`\n`)
			case '\t':
				b.WriteString(`\t`)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('"')
	}
	b.WriteString(">>")
}

// formatFloat writes a float as Erlang's shortest form does: always with a fraction, and with
// an exponent without '+' or leading zeros ("1.5", "3.0", "1.0e-7", "1.0e21").
func formatFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	mant, exp, hasExp := strings.Cut(s, "e")
	if !strings.ContainsAny(mant, ".NI") {
		mant += ".0"
	}
	if !hasExp {
		return mant
	}
	sign := ""
	if exp[0] == '-' {
		sign = "-"
	}
	exp = strings.TrimLeft(exp[1:], "0")
	return mant + "e" + sign + exp
}
