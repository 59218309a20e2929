"""Random streams, derived so that arms of an A/B share their random numbers.

Every stream is a child of ``SeedSequence(seed, spawn_key=(replicate, stream, ...))``. Population,
catalog, creators and arrivals never depend on the arm, so every arm meets the same people at the
same moments. The recommender's stream also includes the arm name.

User responses use *counter-based* noise: a uniform is a hash of (cell key, session, page, slot,
purpose). User 17's third page of a given session therefore gets the same noise under every arm,
however the batches around it differ, which a sequential generator cannot promise.
"""

from __future__ import annotations

import zlib

import numpy as np

STREAMS = {
    "model": 0,
    "population": 1,
    "catalog": 2,
    "arrivals": 3,
    "responses": 4,
    "recommender": 5,
    "panel": 6,
    "social": 20,  # the social graph (agents/users/social.py)
    "creators": 7,  # joins, adaptive creators' topic draws and strategy noise
    "rhythm": 41,  # hour-of-day profiles (agents/users/daily_rhythm.py)
}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)
_INV_2_53 = 1.0 / 9007199254740992.0


def operand(value: object, dtype: type | np.dtype) -> np.ndarray:
    """A read-only 0-d array of ``dtype``, to pass to ufuncs on small arrays in hot loops.

    Why: numpy converts a scalar operand (Python or numpy) at every call, which costs about as
    much as the whole operation on a page batch's few dozen elements (~0.5 µs against ~0.27 µs
    with a 0-d array). The values are the same when ``dtype`` is the array's own dtype (the
    type a scalar of that kind is computed in)."""
    array = np.array(value, dtype)
    array.flags.writeable = False
    return array


_GOLDEN_0D, _M1_0D, _M2_0D = (operand(c, np.uint64) for c in (_GOLDEN, _M1, _M2))
_S27_0D, _S30_0D, _S31_0D, _S11_0D = (operand(c, np.uint64) for c in (27, 30, 31, 11))
_INV_2_53_0D = operand(_INV_2_53, np.float64)


def seed_sequence(seed: int, replicate: int, stream: str, *extra: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(replicate, STREAMS[stream], *extra))


def generator(seed: int, replicate: int, stream: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng(seed_sequence(seed, replicate, stream, *extra))


def arm_key(arm_name: str) -> int:
    """A stable integer for an arm name (for the arm-specific recommender stream)."""
    return zlib.crc32(arm_name.encode("utf-8"))


def hash_base(seed: int, replicate: int) -> np.uint64:
    """The key every counter-based uniform of a (seed, replicate) cell starts from."""
    return np.uint64(seed_sequence(seed, replicate, "responses").generate_state(1, np.uint64)[0])


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic, no Python loop)."""
    z = np.array(z, dtype=np.uint64)
    if z.ndim == 0:  # a scalar in, a numpy scalar out (in-place steps need an array)
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)
    return _mix64_owned(z)


def _mix64_owned(z: np.ndarray) -> np.ndarray:
    """:func:`mix64` in place on an array the caller owns. In-place steps allocate one
    temporary per shift instead of three per round: past ~100 kB an array's temporaries are
    fresh pages from the allocator, which made the out-of-place form several times slower.
    The constants are 0-d arrays (:func:`operand`): a tick hashes a few dozen keys, where
    converting a scalar at each of the eight steps cost 40% of the hash."""
    z ^= z >> _S30_0D
    z *= _M1_0D
    z ^= z >> _S27_0D
    z *= _M2_0D
    z ^= z >> _S31_0D
    return z


def combine(key: np.ndarray | np.uint64, value: np.ndarray | int) -> np.ndarray:
    """Hash ``value`` into ``key``; both broadcast."""
    value = np.asarray(value).astype(np.uint64)
    mixed = np.asarray(key, dtype=np.uint64) + value * _GOLDEN
    if mixed.ndim == 0:
        return mix64(mixed + _GOLDEN)
    mixed += _GOLDEN
    return _mix64_owned(mixed)


def uniforms(key: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) float64 from uint64 keys (53 high-quality bits)."""
    bits = mix64(key)
    if bits.ndim == 0:
        return (bits >> np.uint64(11)).astype(np.float64) * _INV_2_53
    bits >>= _S11_0D
    out = bits.astype(np.float64)
    out *= _INV_2_53_0D
    return out
