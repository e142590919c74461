package configs

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// problems is the error's lines, failing the test if err is not an ErrorList.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want problems")
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %T %q is not an ErrorList", err, err)
	}
	return strings.Split(err.Error(), "\n")
}

// wantProblems checks that err reports exactly want, in order.
func wantProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	got := problems(t, err)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
