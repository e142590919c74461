package config
import ("testing";"github.com/gobwas/glob")
func TestX(t *testing.T){
 for _, p := range []string{"[a", "{a,b", "a\\", "{a,}", "{a\\,b,c}", "*", "a.*", "[]", "{}"} {
   g, err := glob.Compile(p)
   if err != nil { t.Log(p, err); continue }
   t.Log(p, g.Match("a"), g.Match("a,b"), g.Match(""), g.Match("a.b"))
 }
}
