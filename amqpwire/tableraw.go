package amqpwire

// Raw returns the first field named key as it is on the wire, without decoding it: its type
// octet and its encoded value (for strings, byte arrays, arrays and tables, the bytes after the
// length prefix). raw aliases t. It is for callers that only hash or compare a value and must
// not allocate, such as the consistent-hash exchange. ok is false when the key is absent; err is
// set when the table is malformed before the key is found.
func (t Table) Raw(key string) (typ byte, raw []byte, ok bool, err error) {
	b := []byte(t)
	for len(b) > 0 {
		k, typ, rest, err := readFieldHeader(b)
		if err != nil {
			return 0, nil, false, err
		}
		if string(k) == key {
			switch typ {
			case 'S', 'x', 'F', 'A':
				body, _, err := lengthPrefixed(rest, typ)
				if err != nil {
					return 0, nil, false, err
				}
				return typ, body, true, nil
			}
			n := fixedSize(typ)
			if n < 0 || len(rest) < n {
				_, err := skipValue(rest, typ)
				return 0, nil, false, err
			}
			return typ, rest[:n], true, nil
		}
		if b, err = skipValue(rest, typ); err != nil {
			return 0, nil, false, err
		}
	}
	return 0, nil, false, nil
}
