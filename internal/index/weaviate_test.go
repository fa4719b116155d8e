package index

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseWeaviateURL(t *testing.T) {
	c, err := ParseWeaviateURL("weaviate://10.0.0.5:8080?class=products&replicas=2&shards=3&read=quorum&ef=96")
	if err != nil {
		t.Fatal(err)
	}
	want := WeaviateConfig{
		Host: "10.0.0.5:8080", GRPCHost: "10.0.0.5:50051", Class: "Products", Replicas: 2, Shards: 3,
		ReadConsistency: "QUORUM", WriteConsistency: "QUORUM", BatchSize: 512, Parallel: 2, EfSearch: 96,
		Timeout: time.Minute,
	}
	if c != want {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	c, err = ParseWeaviateURL("weaviates://db.example:443?grpc=db.example:50443&timeout=5s")
	if err != nil || !c.Secure || c.GRPCHost != "db.example:50443" || c.Timeout != 5*time.Second || c.Replicas != 1 {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{
		"http://x:1", "weaviate://", "weaviate://x:1?replicas=-1", "weaviate://x:1?colour=red",
		"weaviate://x:1?read=SOME", "weaviate://x:1?class=9lives", "weaviate://x:1?timeout=soon",
	} {
		if _, err := ParseWeaviateURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if !IsStoreURL("weaviate://h:1") || IsStoreURL("/var/lib/prodsearch") {
		t.Fatal("IsStoreURL")
	}
}

func TestRefUUID(t *testing.T) {
	a, b := refUUID("shoe_001"), refUUID("shoe_002")
	if a == b || a != refUUID("shoe_001") {
		t.Fatal("refUUID not a function of the id")
	}
	s := a.String()
	if len(s) != 36 || s[14] != '5' || !strings.ContainsRune("89ab", rune(s[19])) {
		t.Fatalf("%s is not a version-5 RFC 4122 UUID", s)
	}
}

// TestWeaviateCluster runs a 3-node loopback cluster (3 shards, replication
// factor 2) and checks that it answers like the exact index, and still does
// with a node killed. It needs weaviate-server, which the script builds on
// first use (about 6 minutes on 2 cores).
func TestWeaviateCluster(t *testing.T) {
	if os.Getenv("PRODSEARCH_WEAVIATE") != "1" {
		t.Skip("set PRODSEARCH_WEAVIATE=1 to run the 3-node Weaviate cluster test")
	}
	start := time.Now()
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "weaviate-cluster.sh"))
	if err != nil {
		t.Fatal(err)
	}
	base := os.Getenv("WEAVIATE_PORT_BASE")
	if base == "" {
		base = "18500" // away from a developer's cluster on the script's default
	}
	env := append(os.Environ(), "WEAVIATE_STATE_DIR="+t.TempDir(), "WEAVIATE_PORT_BASE="+base)
	cluster := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(script, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("weaviate-cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	step := func(what string, since time.Time) { t.Logf("%-32s %6.1fs", what, time.Since(since).Seconds()) }

	t0 := time.Now()
	cluster("build")
	step("build (cached after the first)", t0)
	t0 = time.Now()
	cluster("start", "3")
	t.Cleanup(func() { cluster("stop") })
	step("start 3 nodes", t0)
	ports := strings.Fields(cluster("ports", "0"))

	const n, nq, dim, labels = 4000, 60, 128, 20
	all := synthClusters(21, n+nq, dim, 8, 0.6)
	refs, qs := all[:n], all[n:]
	flat := NewFlat(dim)
	objs := make([]WeaviateObject, n)
	labelOf := make(map[string]string, n)
	for i, v := range refs {
		id := fmt.Sprintf("ref%05d", i)
		objs[i] = WeaviateObject{ID: id, Label: fmt.Sprint("l", i%labels), Vector: v}
		labelOf[id] = objs[i].Label
		if err := flat.Add(id, v); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	url := fmt.Sprintf("weaviate://127.0.0.1:%s?grpc=127.0.0.1:%s&class=ClusterTest&replicas=2&shards=3", ports[0], ports[1])
	idx, err := OpenURL(ctx, url, dim)
	if err != nil {
		t.Fatal(err)
	}
	w := idx.(*Weaviate)
	if _, err := OpenURL(ctx, url, dim+1); !errors.Is(err, ErrDim) {
		t.Fatalf("reopening with another dimension: %v", err)
	}
	t0 = time.Now()
	if err := w.Put(ctx, objs); err != nil {
		t.Fatal(err)
	}
	step(fmt.Sprintf("import %d x %d", n, dim), t0)
	if got, err := w.Count(ctx); err != nil || got != n {
		t.Fatalf("Count = %d, %v; want %d", got, err, n)
	}

	// Exact answers, and the cluster's with every node up.
	exact := make([][]Hit, nq)
	for i, q := range qs {
		if exact[i], err = flat.Search(ctx, q, 10, nil); err != nil {
			t.Fatal(err)
		}
	}
	search := func() [][]Hit {
		t.Helper()
		out := make([][]Hit, nq)
		for i, q := range qs {
			if out[i], err = w.Search(ctx, q, 10, nil); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	t0 = time.Now()
	healthy := search()
	step(fmt.Sprintf("%d searches, 3 nodes up", nq), t0)
	if r := Recall(healthy, exact); r < 0.95 {
		t.Errorf("recall@10 vs exact %.3f < 0.95", r)
	} else {
		t.Logf("recall@10 vs exact, 3 nodes: %.3f", r)
	}
	for i := range healthy {
		for j, h := range healthy[i] {
			if h.ID == exact[i][j].ID && abs32(h.Score-exact[i][j].Score) > 1e-4 {
				t.Fatalf("score of %s: weaviate %v, exact %v", h.ID, h.Score, exact[i][j].Score)
			}
		}
	}
	if _, err := w.Search(ctx, qs[0], 10, func(int) bool { return true }); !errors.Is(err, ErrFilterUnsupported) {
		t.Fatalf("position filter: %v", err)
	}

	// Label filter on the server equals the exact filtered search.
	lhits, err := w.SearchLabel(ctx, qs[0], 10, "l3")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := flat.Search(ctx, qs[0], 10, func(i int) bool { return labelOf[flat.ID(i)] == "l3" })
	got := make([]Hit, len(lhits))
	for i, h := range lhits {
		if h.Label != "l3" {
			t.Fatalf("label filter returned %s with label %s", h.ID, h.Label)
		}
		got[i] = h.Hit
	}
	if r := Recall([][]Hit{got}, [][]Hit{want}); r < 0.9 {
		t.Errorf("label-filtered recall %.2f", r)
	}

	// Delete, while all replicas can acknowledge.
	gone := exact[0][0].ID
	if ok, err := w.Delete(ctx, gone); !ok || err != nil {
		t.Fatalf("Delete(%s) = %v, %v", gone, ok, err)
	}
	if ok, err := w.Delete(ctx, gone); ok || err != nil {
		t.Fatalf("second Delete(%s) = %v, %v", gone, ok, err)
	}
	if !w.Remove(exact[1][0].ID) || w.Len() != n-2 {
		t.Fatalf("Remove / Len after removals: %d", w.Len())
	}
	if err := w.Put(ctx, []WeaviateObject{objs[indexOfID(objs, gone)], objs[indexOfID(objs, exact[1][0].ID)]}); err != nil {
		t.Fatal(err)
	}
	if w.Len() != n {
		t.Fatalf("Len %d after re-import", w.Len())
	}

	// One node down: every shard keeps a replica, reads at ONE go on.
	t0 = time.Now()
	cluster("kill-node", "2")
	down := search()
	step(fmt.Sprintf("%d searches, node 2 killed", nq), t0)
	r := Recall(down, healthy)
	t.Logf("recall@10 with node 2 down vs all up: %.3f", r)
	if r < 0.99 {
		t.Errorf("recall@10 with a node down %.3f < 0.99", r)
	}

	t0 = time.Now()
	cluster("start-node", "2")
	step("restart node 2", t0)
	if r := Recall(search(), healthy); r < 0.99 {
		t.Errorf("recall@10 after restart %.3f < 0.99", r)
	}
	if err := w.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	step("whole test", start)
}

func indexOfID(objs []WeaviateObject, id string) int {
	for i, o := range objs {
		if o.ID == id {
			return i
		}
	}
	return -1
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
