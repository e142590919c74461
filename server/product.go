package server

// DefaultProductName is the product Warren names in connection.start unless Config.Product
// says otherwise.
const DefaultProductName = "Warren"

// Product is the product name and version the broker presents in connection.start's
// server-properties ("product" and "version"). Some clients, tests and tools check for
// "RabbitMQ"; an operator may present that name, with a RabbitMQ version, for their sake.
type Product struct {
	Name    string // "" is DefaultProductName
	Version string // "" is Version, Warren's own
}

// withDefaults fills the fields left empty.
func (p Product) withDefaults() Product {
	if p.Name == "" {
		p.Name = DefaultProductName
	}
	if p.Version == "" {
		p.Version = Version
	}
	return p
}
