package policy
import ("context";"testing")
func TestZZ(t *testing.T){
	dir := t.TempDir()
	writeFile(t, dir, "access.rego", "package cleanroom.access\n\ndecision := {\"result\": \"allow\"} if {\n\tx := 1\n}\n")
	_, err := New(context.Background(), WithBundleDir(dir)); t.Log(err)
	dir = copyDefaultBundle(t); writeFile(t, dir, "policy.wasm", "\x00asm")
	_, err = New(context.Background(), WithBundleDir(dir)); t.Log(err)
	dir = t.TempDir(); writeFile(t, dir, "access.rego", "package cleanroom.access\n\ndecision := {\"result\": \"allow\"} if time.now_ns() > 0\n")
	_, err = New(context.Background(), WithBundleDir(dir)); t.Log(err)
}
