package configs

import (
	"encoding/base64"
	"testing"
)

// TestRabbitMQPasswordVector is the example in RabbitMQ's access control docs: password
// "test12" with salt 0x908DC60A.
func TestRabbitMQPasswordVector(t *testing.T) {
	got, err := hashWithSalt("test12", "", []byte{0x90, 0x8D, 0xC6, 0x0A})
	if err != nil || got != "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR" {
		t.Fatalf("hash = %q, %v", got, err)
	}
	u := User{Name: "x", PasswordHash: got, HashingAlgorithm: sha256Algorithm}
	if !u.CheckPassword("test12") || u.CheckPassword("test13") || u.CheckPassword("") {
		t.Error("CheckPassword does not accept exactly test12")
	}
}

func TestHashPasswordEveryAlgorithm(t *testing.T) {
	for alg, size := range map[string]int{"": 32, sha256Algorithm: 32, "rabbit_password_hashing_sha512": 64, "rabbit_password_hashing_md5": 16} {
		h, err := HashPassword("change-me", alg)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(h)
		if len(raw) != 4+size {
			t.Errorf("%s: %d bytes, want %d", alg, len(raw), 4+size)
		}
		if alg == "" {
			alg = sha256Algorithm
		}
		u := User{Name: "app", PasswordHash: h, HashingAlgorithm: alg}
		if !u.CheckPassword("change-me") || u.CheckPassword("change-me!") {
			t.Errorf("%s: CheckPassword does not accept exactly the password", alg)
		}
		if err := (&Definitions{Users: []User{u}}).Validate(); err != nil {
			t.Errorf("%s: a fresh hash does not validate: %v", alg, err)
		}
		// The same hash under another algorithm is refused, not mis-checked.
		u.HashingAlgorithm = "rabbit_password_hashing_md5"
		if size != 16 && u.CheckPassword("change-me") {
			t.Errorf("%s hash accepted as md5", alg)
		}
	}
	h1, _ := HashPassword("same", "")
	h2, _ := HashPassword("same", "")
	if h1 == h2 {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if _, err := HashPassword("x", "bcrypt"); err == nil || err.Error() !=
		`hashing algorithm "bcrypt" is not one of rabbit_password_hashing_sha256, rabbit_password_hashing_sha512, rabbit_password_hashing_md5` {
		t.Errorf("unknown algorithm: %v", err)
	}
	if (User{PasswordHash: "not base64!", HashingAlgorithm: sha256Algorithm}).CheckPassword("") {
		t.Error("a malformed hash matches")
	}
}

// An empty password hash is a user who cannot log in with a password: accepted, matching none.
func TestEmptyPasswordHashMatchesNothing(t *testing.T) {
	defs, err := ParseDefinitions("defs.yaml", []byte("users:\n  - {name: nopw, password-hash: \"\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(defs.Users) != 1 || defs.Users[0].CheckPassword("") || defs.Users[0].CheckPassword("x") {
		t.Errorf("users = %+v: want one user matching no password", defs.Users)
	}
}
