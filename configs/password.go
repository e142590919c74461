package configs

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"
)

// newHash is the digest of a hashing algorithm, or nil for an unknown one.
func newHash(algorithm string) hash.Hash {
	switch algorithm {
	case "", sha256Algorithm:
		return sha256.New()
	case "rabbit_password_hashing_sha512":
		return sha512.New()
	case "rabbit_password_hashing_md5":
		return md5.New()
	}
	return nil
}

// HashPassword hashes password as RabbitMQ does, so hashes move between Warren and
// RabbitMQ both ways: base64(salt ++ digest(salt ++ password)) with 4 random bytes of salt.
// algorithm is rabbit_password_hashing_sha256 (also for ""), _sha512 or _md5.
func HashPassword(password, algorithm string) (string, error) {
	var salt [4]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	return hashWithSalt(password, algorithm, salt[:])
}

func hashWithSalt(password, algorithm string, salt []byte) (string, error) {
	h := newHash(algorithm)
	if h == nil {
		return "", fmt.Errorf("%s", oneOf("hashing algorithm", algorithm, algorithms...))
	}
	h.Write(salt)
	h.Write([]byte(password))
	return base64.StdEncoding.EncodeToString(h.Sum(append([]byte(nil), salt...))), nil
}

// CheckPassword reports whether password is the user's, comparing digests in constant
// time. A user with a malformed hash or an unknown algorithm matches no password.
func (u User) CheckPassword(password string) bool {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(u.PasswordHash))
	h := newHash(u.HashingAlgorithm)
	if err != nil || h == nil || len(raw) != 4+h.Size() {
		return false
	}
	h.Write(raw[:4])
	h.Write([]byte(password))
	return subtle.ConstantTimeCompare(h.Sum(nil), raw[4:]) == 1
}
