package backbone

// Options tune a Session; the zero value finds the library and uses all cores.
type Options struct {
	Library string // path to libonnxruntime.so.1; "" = FindLibrary
	Threads int    // intra-op threads; 0 = all cores
}

// FeatureMap is a model output in NCHW order; a vector output has H = W = 1.
type FeatureMap struct {
	Data       []float32
	N, C, H, W int
}

// At returns the C×H×W block of image i.
func (f FeatureMap) At(i int) []float32 {
	n := f.C * f.H * f.W
	return f.Data[i*n : (i+1)*n]
}

// Tensor is an array with its shape, the unit a Graph reads and writes:
// float32 in Data, or uint8 in U8 for the inner tensors of a quantised model.
type Tensor struct {
	Data  []float32
	U8    []uint8
	Shape []int64
}
