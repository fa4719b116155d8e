// Package train fits the learned stages that sit after the frozen backbone:
// unsupervised PCA whitening, supervised learned whitening (Lw) and a
// metric-learning linear or 2-layer MLP head trained with proxy-based
// (normalised softmax / ArcFace, Proxy-Anchor) or pair-based (multi-similarity,
// semi-hard triplet) losses.
//
// Everything works on precomputed descriptors, so an experiment is minutes of
// CPU rather than a GPU fine-tune of the backbone. Gradients are written by
// hand and the heavy products go through gonum's float32 BLAS (Sgemm) on
// whole batches; the tests check every gradient against finite differences.
// The results are describe.Heads, the same values prodsearch applies at query
// and index time, so what is evaluated here is exactly what is served.
package train
