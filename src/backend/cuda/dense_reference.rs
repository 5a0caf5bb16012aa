//! A CPU reference of [`DenseOps`]: every operation the vendor path asks of the GPU (potrf with
//! LAPACK's info, potrs, the inverse from the factor, the batched product) and of our kernels
//! (Gram, jitter shift, pair pass) as plain loops over column-major host matrices, so that the
//! plumbing of [`super::dense`] (chunks, the jitter loop, statuses, the gemm-based gradient) runs
//! and is compared with the CPU backend where there is no GPU (tests/cuda_dense.rs).

use super::dense::{Chunk, DenseOps, PairSums};
use crate::error::Result;

/// The CPU reference (host vectors as device buffers).
#[derive(Default)]
pub(super) struct Reference;

/// c blocks of N x k (k = N for matrices), member after member, column-major.
pub(super) struct Block {
    v: Vec<f64>,
    c: usize,
    n: usize,
    k: usize,
}

impl Block {
    fn at(&self, q: usize, i: usize, j: usize) -> f64 {
        self.v[(q * self.k + j) * self.n + i]
    }
    fn set(&mut self, q: usize, i: usize, j: usize, x: f64) {
        self.v[(q * self.k + j) * self.n + i] = x;
    }
}

/// s phi, s psi and s dphi/dlog alpha of the member's pair (i, j) (i != j), from centred x.
fn pair(ch: &Chunk<'_>, q: usize, i: usize, j: usize) -> (f64, f64, f64) {
    let (n, d, inp) = (ch.n(), ch.d(), ch.inp);
    let p = &inp.params;
    let mut r2 = 0.0;
    for t in 0..d {
        let u = (inp.x[(q * n + i) * d + t] - inp.x[(q * n + j) * d + t]) / p.ls[q * d + t];
        r2 += u * u;
    }
    let (s, al) = (p.s[q], p.alpha.as_ref().map_or(1.0, |a| a[q]));
    (s * ch.kernel.phi(r2, al), s * ch.kernel.psi(r2, al), s * ch.kernel.dphi_dlog_alpha(r2, al))
}

impl DenseOps for Reference {
    type Mats = Block;
    type Cols = Block;

    fn mats(&self, c: usize, n: usize) -> Result<Block> {
        Ok(Block { v: vec![f64::NAN; c * n * n], c, n, k: n })
    }

    fn cols(&self, host: &[f64], c: usize, n: usize, k: usize) -> Result<Block> {
        assert_eq!(host.len(), c * n * k, "cols: {} values for {c} x {n} x {k}", host.len());
        Ok(Block { v: host.to_vec(), c, n, k })
    }

    fn read_cols(&self, v: &Block) -> Result<Vec<f64>> {
        Ok(v.v.clone())
    }

    fn gram(&self, ch: &Chunk<'_>, k0: &mut Block) -> Result<()> {
        let (c, n, inp) = (ch.c(), ch.n(), ch.inp);
        for q in 0..c {
            for j in 0..n {
                for i in 0..n {
                    let (oi, oj) = (inp.mask[q * n + i] != 0, inp.mask[q * n + j] != 0);
                    let v = if !oi || !oj {
                        if i == j {
                            1.0
                        } else {
                            0.0
                        }
                    } else if i == j {
                        // (s + noise) + yvar_i, summed as the CPU backend sums it.
                        let base = inp.params.s[q] + inp.params.noise[q];
                        inp.yvar.as_ref().map_or(base, |y| base + y[q * n + i])
                    } else {
                        pair(ch, q, i, j).0
                    };
                    k0.set(q, i, j, v);
                }
            }
        }
        Ok(())
    }

    fn shifted(&self, ch: &Chunk<'_>, k0: &Block, a: &mut Block, jit: &[Option<f64>]) -> Result<()> {
        let n = ch.n();
        for (q, j) in jit.iter().enumerate() {
            let Some(j) = *j else { continue };
            let (lo, hi) = (q * n * n, (q + 1) * n * n);
            a.v[lo..hi].copy_from_slice(&k0.v[lo..hi]);
            for i in 0..n {
                if ch.inp.mask[q * n + i] != 0 {
                    a.v[lo + i * n + i] += j;
                }
            }
        }
        Ok(())
    }

    fn potrf(&self, a: &mut Block, which: &[bool]) -> Result<Vec<i32>> {
        let n = a.n;
        let mut info = vec![0; a.c];
        for (q, _) in which.iter().enumerate().filter(|w| *w.1) {
            for j in 0..n {
                let mut piv = a.at(q, j, j);
                for t in 0..j {
                    piv -= a.at(q, j, t) * a.at(q, j, t);
                }
                if !(piv > 0.0) || !piv.is_finite() {
                    info[q] = j as i32 + 1;
                    break;
                }
                let ljj = piv.sqrt();
                a.set(q, j, j, ljj);
                for i in j + 1..n {
                    let mut v = a.at(q, i, j);
                    for t in 0..j {
                        v -= a.at(q, i, t) * a.at(q, j, t);
                    }
                    a.set(q, i, j, v / ljj);
                }
            }
        }
        Ok(info)
    }

    fn potrs(&self, l: &Block, b: &mut Block) -> Result<()> {
        let n = l.n;
        for q in 0..l.c {
            for i in 0..n {
                let mut v = b.at(q, i, 0);
                for t in 0..i {
                    v -= l.at(q, i, t) * b.at(q, t, 0);
                }
                b.set(q, i, 0, v / l.at(q, i, i));
            }
            for i in (0..n).rev() {
                let mut v = b.at(q, i, 0);
                for t in i + 1..n {
                    v -= l.at(q, t, i) * b.at(q, t, 0);
                }
                b.set(q, i, 0, v / l.at(q, i, i));
            }
        }
        Ok(())
    }

    fn diagonals(&self, l: &Block) -> Result<Vec<f64>> {
        Ok((0..l.c).flat_map(|q| (0..l.n).map(move |i| (q, i))).map(|(q, i)| l.at(q, i, i)).collect())
    }

    /// The lower triangle of K^-1; the strict upper triangle is NaN (the pair pass must not
    /// read it, as cuSOLVER's potri leaves it unspecified).
    fn inverse(&self, l: &Block, out: &mut Block) -> Result<()> {
        let n = l.n;
        for q in 0..l.c {
            // L^-1 column by column (forward substitution of the identity), then L^-T L^-1.
            let mut li = vec![0.0; n * n];
            for j in 0..n {
                for i in j..n {
                    let mut v = if i == j { 1.0 } else { 0.0 };
                    for t in j..i {
                        v -= l.at(q, i, t) * li[j * n + t];
                    }
                    li[j * n + i] = v / l.at(q, i, i);
                }
            }
            for j in 0..n {
                for i in 0..n {
                    let v = if i >= j { (i..n).map(|t| li[i * n + t] * li[j * n + t]).sum() } else { f64::NAN };
                    out.set(q, i, j, v);
                }
            }
        }
        Ok(())
    }

    /// As kernels/dense.cu dense_pairs: reads the lower triangle, writes M on both.
    fn pair_pass(&self, ch: &Chunk<'_>, alpha: &Block, kinv: &mut Block) -> Result<Vec<PairSums>> {
        let (c, n, inp) = (ch.c(), ch.n(), ch.inp);
        let mut sums = vec![[0.0; 3]; c];
        for (q, sq) in sums.iter_mut().enumerate() {
            for j in 0..n {
                for i in j..n {
                    let obs = inp.mask[q * n + i] != 0 && inp.mask[q * n + j] != 0;
                    let mut m = 0.0;
                    if obs {
                        let w = alpha.at(q, i, 0) * alpha.at(q, j, 0) - kinv.at(q, i, j);
                        if i == j {
                            sq[0] += w * inp.params.s[q];
                            sq[1] += w;
                        } else {
                            let (kf, g, a) = pair(ch, q, i, j);
                            sq[0] += 2.0 * w * kf;
                            sq[2] += 2.0 * w * a;
                            m = w * g;
                        }
                    }
                    kinv.set(q, i, j, m);
                    kinv.set(q, j, i, m);
                }
            }
        }
        Ok(sums)
    }

    fn gemm(&self, m: &Block, u: &Block, p: &mut Block) -> Result<()> {
        for q in 0..m.c {
            for j in 0..u.k {
                for i in 0..m.n {
                    let v: f64 = (0..m.n).map(|t| m.at(q, i, t) * u.at(q, t, j)).sum();
                    p.set(q, i, j, v);
                }
            }
        }
        Ok(())
    }
}
