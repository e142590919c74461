package configs

import "go.yaml.in/yaml/v3"

// Product is the product section: the name and version the broker presents in
// connection.start's server-properties, as RabbitMQ's product.name and product.version in
// rabbitmq.conf. An empty field means Warren's own ("Warren" and its version).
type Product struct {
	Name    string // name
	Version string // version
}

// product decodes the product section over p.
func (d *decoder) product(n *yaml.Node, p *Product) {
	f, ok := d.mapping(n, "product", []string{"name", "version"}, nil)
	if !ok {
		return
	}
	for _, field := range []struct {
		key string
		dst *string
	}{{"name", &p.Name}, {"version", &p.Version}} {
		n, ok := f.get(field.key)
		if !ok {
			continue
		}
		path := child("product", field.key)
		s, ok := d.str(n, path)
		switch {
		case !ok:
		case s == "":
			d.errorf(n, path, "%s must not be empty; leave it out for Warren's own", field.key)
		default:
			*field.dst = s
		}
	}
}
