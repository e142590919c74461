// Package amqpgen turns the AMQP 0-9-1 specification XML into the Go source
// of amqpwire/methods_gen.go. It is used by the generator command
// (amqpwire/internal/gen) and by amqpwire's stale-file test.
package amqpgen

import (
	_ "embed"
	"encoding/xml"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Extras is the XML merged into the specification: methods the stripped
// specification lacks and corrections (see the comments in extras.xml).
//
//go:embed extras.xml
var Extras []byte

type xmlSpec struct {
	Constants []xmlConstant `xml:"constant"`
	Domains   []xmlDomain   `xml:"domain"`
	Classes   []xmlClass    `xml:"class"`
}

type xmlConstant struct {
	Name  string `xml:"name,attr"`
	Value int    `xml:"value,attr"`
	Class string `xml:"class,attr"`
}

type xmlDomain struct {
	Name    string      `xml:"name,attr"`
	Type    string      `xml:"type,attr"`
	Asserts []xmlAssert `xml:"assert"`
}

type xmlAssert struct {
	Check string `xml:"check,attr"`
	Value string `xml:"value,attr"`
}

type xmlClass struct {
	Name    string      `xml:"name,attr"`
	Index   int         `xml:"index,attr"`
	Fields  []xmlField  `xml:"field"`
	Methods []xmlMethod `xml:"method"`
}

type xmlMethod struct {
	Name        string       `xml:"name,attr"`
	Index       int          `xml:"index,attr"`
	Synchronous string       `xml:"synchronous,attr"`
	Content     string       `xml:"content,attr"`
	Deprecated  string       `xml:"deprecated,attr"`
	Chassis     []xmlChassis `xml:"chassis"`
	Fields      []xmlField   `xml:"field"`
}

type xmlChassis struct {
	Name string `xml:"name,attr"`
}

type xmlField struct {
	Name     string      `xml:"name,attr"`
	Domain   string      `xml:"domain,attr"`
	Type     string      `xml:"type,attr"`
	Reserved string      `xml:"reserved,attr"`
	Asserts  []xmlAssert `xml:"assert"`
}

// Spec is the resolved specification the code is generated from.
type Spec struct {
	Constants []Constant
	Classes   []Class
}

// Constant is a frame constant or reply code.
type Constant struct {
	Name  string // XML name, "not-found"
	Value int
	Class string // "", "soft-error" or "hard-error"
}

// Class is an AMQP class with its methods.
type Class struct {
	Name    string
	Index   int
	Methods []Method
}

// Method is one method with its resolved fields.
type Method struct {
	Class          *Class
	Name           string
	Index          int
	Synchronous    bool
	Content        bool
	ServerReceives bool
	Deprecated     bool
	Fields         []Field
}

// Field is a method argument with its domain resolved to a base type.
type Field struct {
	Name     string
	Domain   string
	Type     string // bit octet short long longlong shortstr longstr timestamp table
	Reserved bool
	NotNull  bool     // assert check="notnull" on the field or its domain
	Ignored  []string // asserts Validate does not enforce (length, regexp, le)
}

var baseTypes = map[string]bool{
	"bit": true, "octet": true, "short": true, "long": true, "longlong": true,
	"shortstr": true, "longstr": true, "timestamp": true, "table": true,
}

// Parse reads the specification and merges extras (may be nil) into it.
func Parse(specXML, extrasXML []byte) (*Spec, error) {
	var base xmlSpec
	if err := xml.Unmarshal(specXML, &base); err != nil {
		return nil, fmt.Errorf("parse spec: %w", err)
	}
	if len(extrasXML) > 0 {
		var extra xmlSpec
		if err := xml.Unmarshal(extrasXML, &extra); err != nil {
			return nil, fmt.Errorf("parse extras: %w", err)
		}
		if err := merge(&base, &extra); err != nil {
			return nil, err
		}
	}
	return resolve(&base)
}

func merge(base, extra *xmlSpec) error {
	base.Constants = append(base.Constants, extra.Constants...)
	base.Domains = append(base.Domains, extra.Domains...)
	for _, ec := range extra.Classes {
		var bc *xmlClass
		for i := range base.Classes {
			if base.Classes[i].Name == ec.Name {
				bc = &base.Classes[i]
			}
		}
		if bc == nil {
			return fmt.Errorf("extras: class %q is not in the spec", ec.Name)
		}
		for _, em := range ec.Methods {
			replaced := false
			for i := range bc.Methods {
				if bc.Methods[i].Name == em.Name {
					bc.Methods[i] = em
					replaced = true
				}
			}
			if !replaced {
				bc.Methods = append(bc.Methods, em)
			}
		}
	}
	return nil
}

func resolve(x *xmlSpec) (*Spec, error) {
	domains := map[string]xmlDomain{}
	for _, d := range x.Domains {
		domains[d.Name] = d
	}
	s := &Spec{}
	for _, c := range x.Constants {
		s.Constants = append(s.Constants, Constant(c))
	}
	seen := map[[2]int]string{}
	for _, xc := range x.Classes {
		c := Class{Name: xc.Name, Index: xc.Index}
		for _, xm := range xc.Methods {
			m := Method{
				Name:        xm.Name,
				Index:       xm.Index,
				Synchronous: xm.Synchronous == "1",
				Content:     xm.Content == "1",
				Deprecated:  xm.Deprecated == "1",
			}
			for _, ch := range xm.Chassis {
				if ch.Name == "server" {
					m.ServerReceives = true
				}
			}
			id := [2]int{c.Index, m.Index}
			if prev, dup := seen[id]; dup {
				return nil, fmt.Errorf("%s.%s and %s share id %v", c.Name, m.Name, prev, id)
			}
			seen[id] = c.Name + "." + m.Name
			for _, xf := range xm.Fields {
				f, err := resolveField(xf, domains)
				if err != nil {
					return nil, fmt.Errorf("%s.%s: %w", c.Name, m.Name, err)
				}
				m.Fields = append(m.Fields, f)
			}
			c.Methods = append(c.Methods, m)
		}
		sort.SliceStable(c.Methods, func(i, j int) bool { return c.Methods[i].Index < c.Methods[j].Index })
		s.Classes = append(s.Classes, c)
	}
	sort.SliceStable(s.Classes, func(i, j int) bool { return s.Classes[i].Index < s.Classes[j].Index })
	for i := range s.Classes {
		for j := range s.Classes[i].Methods {
			s.Classes[i].Methods[j].Class = &s.Classes[i]
		}
	}
	return s, nil
}

func resolveField(xf xmlField, domains map[string]xmlDomain) (Field, error) {
	f := Field{Name: xf.Name, Domain: xf.Domain, Reserved: xf.Reserved == "1"}
	asserts := append([]xmlAssert(nil), xf.Asserts...)
	typ := xf.Type
	if xf.Domain != "" {
		d, ok := domains[xf.Domain]
		if !ok && !baseTypes[xf.Domain] {
			return f, fmt.Errorf("field %q: unknown domain %q", xf.Name, xf.Domain)
		}
		if ok {
			typ = d.Type
			asserts = append(asserts, d.Asserts...)
		} else {
			typ = xf.Domain
		}
	}
	if !baseTypes[typ] {
		return f, fmt.Errorf("field %q: unknown type %q", xf.Name, typ)
	}
	f.Type = typ
	for _, a := range asserts {
		if a.Check == "notnull" {
			f.NotNull = true
			continue
		}
		desc := a.Check
		if a.Value != "" {
			desc += " " + strconv.Quote(a.Value)
		}
		f.Ignored = append(f.Ignored, desc)
	}
	return f, nil
}

// GoName turns an XML name into an exported Go identifier: "routing-key"
// becomes RoutingKey, "reserved-1" Reserved1. Acronyms are not upper-cased:
// the class-id and method-id arguments of connection.close and channel.close
// would otherwise clash with the ClassID and MethodID methods.
func GoName(s string) string {
	if alias, ok := nameAliases[s]; ok {
		s = alias
	}
	var b strings.Builder
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '_' || r == ' ' }) {
		b.WriteString(strings.ToUpper(part[:1]))
		b.WriteString(part[1:])
	}
	return b.String()
}

// nameAliases fixes XML names that would give inconsistent Go names:
// confirm.select spells its no-wait bit "nowait".
var nameAliases = map[string]string{
	"nowait": "no-wait",
}
