//! An SVGP fit's mini-batches: each member draws S of its observed points per step, uniformly
//! without replacement, from its own ChaCha8 stream, so a member's draws do not depend on the
//! batch it is fitted in or the thread count.

use crate::data::{Dataset, Inputs};
use crate::error::Result;
use ndarray::{Array2, Array3, Axis};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// The mini-batch of the listed members: a dataset of their drawn points (padded with a
/// mask to the largest draw) and each one's scale n / S. Members draw and copy in
/// parallel, each from its own stream, so the draws do not depend on the thread count.
pub(super) fn draw(
    data: &Dataset,
    pools: &mut [Vec<usize>],
    rngs: &mut [ChaCha8Rng],
    active: &[usize],
    s: usize,
) -> Result<(Dataset, Vec<f64>)> {
    let d = data.n_dims();
    let mut listed = vec![false; pools.len()];
    for &e in active {
        listed[e] = true;
    }
    let mut drawn: Vec<Option<Vec<usize>>> = pools
        .par_iter_mut()
        .zip(rngs.par_iter_mut())
        .enumerate()
        .map(|(e, (pool, rng))| {
            if !listed[e] {
                return None;
            }
            if pool.is_empty() {
                *pool = data.observed(e);
            }
            if pool.len() <= s {
                return Some(pool.clone());
            }
            // Partial Fisher-Yates: the first s entries become a uniform draw.
            for i in 0..s {
                let j = rng.random_range(i..pool.len());
                pool.swap(i, j);
            }
            let mut pick = pool[..s].to_vec();
            pick.sort_unstable();
            Some(pick)
        })
        .collect();
    let picks: Vec<Vec<usize>> = active.iter().map(|&e| drawn[e].take().unwrap_or_default()).collect();
    let width = picks.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let k = active.len();
    let mut x = Array3::zeros((k, width, d));
    let mut y = Array2::zeros((k, width));
    let mut mask = Array2::from_elem((k, width), false);
    let mut yvar = data.yvar().map(|_| Array2::zeros((k, width)));
    x.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(y.axis_iter_mut(Axis(0)))
        .zip(mask.axis_iter_mut(Axis(0)))
        .zip(active.par_iter().zip(&picks))
        .for_each(|(((mut xr, mut yr), mut mr), (&e, pick))| {
            let xe = data.x().member(e);
            for (slot, &i) in pick.iter().enumerate() {
                xr.row_mut(slot).assign(&xe.row(i));
                yr[slot] = data.y()[[e, i]];
                mr[slot] = true;
            }
        });
    if let Some(v) = yvar.as_mut() {
        v.axis_iter_mut(Axis(0)).into_par_iter().zip(active.par_iter().zip(&picks)).for_each(|(mut vr, (&e, pick))| {
            for (slot, &i) in pick.iter().enumerate() {
                vr[slot] = data.yvar_at(e, i);
            }
        });
    }
    let scale = active
        .iter()
        .zip(&picks)
        .map(|(&e, pick)| if pick.is_empty() { 1.0 } else { data.n_observed(e) as f64 / pick.len() as f64 })
        .collect();
    let mut sub = Dataset::with_mask(Inputs::Batched(x), y, Some(mask))?;
    if let Some(v) = yvar {
        sub = sub.with_yvar(v)?;
    }
    Ok((sub, scale))
}
