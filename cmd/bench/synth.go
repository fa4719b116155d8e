package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"

	"github.com/viterin/vek/vek32"
)

// synth describes the synthetic descriptors. Uniform random vectors would
// make every neighbour equally far and ANN recall meaningless, so the
// generator imitates a catalogue: categories of products, several photos
// (views) per product, in a low-dimensional latent space embedded in dim
// dimensions with isotropic noise on top, as CNN descriptors occupy a
// low-dimensional manifold of their nominal space.
type synth struct {
	dim, latent   int
	productsPer   int     // products per category
	viewsPer      int     // average references per product
	productSpread float64 // product scatter around its category, latent units
	viewSpread    float64 // view scatter around its product
	noise         float64 // isotropic noise norm relative to the signal norm
	seed          uint64
}

// refIDs names n synthetic references, in order.
func refIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%07d", i)
	}
	return ids
}

func defaultSynth(dim int, seed uint64) synth {
	return synth{dim: dim, latent: 64, productsPer: 250, viewsPer: 4,
		productSpread: 0.7, viewSpread: 0.4, noise: 0.5, seed: seed}
}

// world is a drawn catalogue: product centres in latent space and the
// embedding basis.
type world struct {
	s        synth
	products []float32 // nProducts x latent
	basis    []float32 // latent x dim
}

func (s synth) world(nRefs int) *world {
	r := rand.New(rand.NewPCG(s.seed, 1))
	nProd := max(1, nRefs/s.viewsPer)
	nCat := max(1, nProd/s.productsPer)
	cats := make([]float32, nCat*s.latent)
	for i := range cats {
		cats[i] = float32(r.NormFloat64())
	}
	w := &world{s: s, products: make([]float32, nProd*s.latent), basis: make([]float32, s.latent*s.dim)}
	for p := range nProd {
		c := r.IntN(nCat)
		for j := range s.latent {
			w.products[p*s.latent+j] = cats[c*s.latent+j] + float32(s.productSpread*r.NormFloat64())
		}
	}
	scale := 1 / math.Sqrt(float64(s.dim))
	for i := range w.basis {
		w.basis[i] = float32(scale * r.NormFloat64())
	}
	return w
}

// viewChunk is the unit of seeding: rows [c*viewChunk, (c+1)*viewChunk) of a
// stream are drawn from their own seed.
const viewChunk = 1024

// views draws n unit vectors, each a new photo of a random product, into a
// row-major n x dim slice. stream separates reference and query draws;
// chunks have their own seeds so the output does not depend on GOMAXPROCS.
func (w *world) views(n int, stream uint64) []float32 {
	v, _ := w.viewsAt(0, n, stream) // offset 0 is always aligned
	return v
}

// viewsAt draws rows [lo, lo+n) of a stream, the same rows views would
// draw, so that a benchmark can stream a catalogue larger than it wants to
// hold. lo must be a multiple of viewChunk.
func (w *world) viewsAt(lo0, n int, stream uint64) ([]float32, error) {
	s := w.s
	const chunk = viewChunk
	if lo0%chunk != 0 {
		return nil, fmt.Errorf("viewsAt: offset %d is not a multiple of %d", lo0, chunk)
	}
	out := make([]float32, n*s.dim)
	nChunks := (n + chunk - 1) / chunk
	parallelFor(nChunks, runtime.GOMAXPROCS(0), func(c int) {
		lat := make([]float32, chunk*s.latent)
		r := rand.New(rand.NewPCG(s.seed^stream, uint64(lo0/chunk+c)))
		lo, hi := c*chunk, min((c+1)*chunk, n)
		m := hi - lo
		for i := range m {
			p := r.IntN(len(w.products) / s.latent)
			for j := range s.latent {
				lat[i*s.latent+j] = w.products[p*s.latent+j] + float32(s.viewSpread*r.NormFloat64())
			}
		}
		dst := out[lo*s.dim : hi*s.dim]
		vek32.MatMul_Into(dst, lat[:m*s.latent], w.basis, s.latent)
		for i := range m {
			v := dst[i*s.dim : (i+1)*s.dim]
			sig := math.Sqrt(float64(vek32.Dot(v, v)))
			amp := float32(s.noise * sig / math.Sqrt(float64(s.dim)))
			for j := range v {
				v[j] += amp * float32(r.NormFloat64())
			}
			vek32.MulNumber_Inplace(v, 1/vek32.Norm(v))
		}
	})
	return out, nil
}

// phase2Data holds the synthetic descriptors (row-major references, one slice per
// query) and class labels.
type phase2Data struct {
	refs       []float32
	queries    [][]float32
	refClass   []int32
	queryClass []int32
	nRel       []int // references per class
}

// generatePhase2 draws the phase2 benchmark's descriptors (planted classes in a low-rank
// latent space; see phase2.go).
func generatePhase2(c phase2Config) phase2Data {
	r := rand.New(rand.NewPCG(c.seed, 0))
	centres := make([]float64, c.classes*c.rank)
	for i := range centres {
		centres[i] = r.NormFloat64()
	}
	proj := make([]float64, c.rank*c.dim) // rank x dim, entries of variance 1/rank
	scale := 1 / math.Sqrt(float64(c.rank))
	for i := range proj {
		proj[i] = r.NormFloat64() * scale
	}
	d := phase2Data{
		refs:       make([]float32, c.refs*c.dim),
		queries:    make([][]float32, c.queries),
		refClass:   make([]int32, c.refs),
		queryClass: make([]int32, c.queries),
		nRel:       make([]int, c.classes),
	}
	for i := range d.refClass {
		d.refClass[i] = int32(r.IntN(c.classes))
		if i < c.classes {
			d.refClass[i] = int32(i) // every class has a reference
		}
		d.nRel[d.refClass[i]]++
	}
	qbuf := make([]float32, c.queries*c.dim)
	for i := range d.queryClass {
		d.queryClass[i] = int32(r.IntN(c.classes))
		d.queries[i] = qbuf[i*c.dim : (i+1)*c.dim : (i+1)*c.dim]
	}
	// Each row draws from its own stream, so the data does not depend on
	// the number of goroutines; a chunk of rows shares the work buffers.
	const chunk = 256
	rows := c.refs + c.queries
	parallelFor((rows+chunk-1)/chunk, runtime.GOMAXPROCS(0), func(ch int) {
		z := make([]float64, c.rank)
		x := make([]float64, c.dim)
		for row := ch * chunk; row < min((ch+1)*chunk, rows); row++ {
			rr := rand.New(rand.NewPCG(c.seed, uint64(row)+1))
			var class int32
			var out []float32
			if row < c.refs {
				class, out = d.refClass[row], d.refs[row*c.dim:(row+1)*c.dim]
			} else {
				class, out = d.queryClass[row-c.refs], d.queries[row-c.refs]
			}
			for j := range z {
				z[j] = centres[int(class)*c.rank+j] + c.intraNoise*rr.NormFloat64()
			}
			clear(x)
			for j, zj := range z {
				p := proj[j*c.dim : (j+1)*c.dim]
				for t := range x {
					x[t] += zj * p[t]
				}
			}
			// Each projected component has variance about 1+intra^2, so
			// this noise has noise times the signal's norm.
			sigma := c.noise * math.Sqrt(1+c.intraNoise*c.intraNoise)
			var ss float64
			for t := range x {
				x[t] += sigma * rr.NormFloat64()
				ss += x[t] * x[t]
			}
			inv := 1 / math.Sqrt(ss)
			for t := range x {
				out[t] = float32(x[t] * inv)
			}
		}
	})
	return d
}
