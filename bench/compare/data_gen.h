// Deterministic keys, values and key orders for the comparison, so both
// engines see byte-identical data in the same order and reads can verify the
// value they got.
//
// Keys are the key index as 16 zero-padded decimal digits. A value is 100
// bytes, db_bench's "half compressible" shape: 50 random printable bytes
// followed by the same 50 bytes again; it is a pure function of (key index,
// version), so a reader recomputes what it must find.
//
// Thread safety: all functions are pure; a generator object belongs to one
// thread.

#ifndef ARENAKV_BENCH_COMPARE_DATA_GEN_H_
#define ARENAKV_BENCH_COMPARE_DATA_GEN_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace arenakv::compare {

inline constexpr size_t kKeyBytes = 16;
inline constexpr size_t kValueBytes = 100;

inline uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A small, fast PRNG (splitmix64) with the same sequence on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() { return SplitMix64(&state_); }
  // Uniform in [0, n).
  uint64_t Uniform(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }
  // Uniform in [0, 1).
  double UniformDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// Writes key `index` into out[0..16).
inline void FormatKey(uint64_t index, char* out) {
  for (int i = static_cast<int>(kKeyBytes) - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + index % 10);
    index /= 10;
  }
}

// Turns key `index` in out[0..16) into key `index + 1`.
inline void IncrementKey(char* out) {
  for (int i = static_cast<int>(kKeyBytes) - 1; i >= 0; --i) {
    if (out[i] != '9') {
      ++out[i];
      return;
    }
    out[i] = '0';
  }
}

// Writes the value of key `index` at `version` into out[0..100).
inline void FormatValue(uint64_t index, uint32_t version, char* out) {
  uint64_t state = index * 0xD1B54A32D192ED03ull ^ (uint64_t{version} << 48) ^ 0x5EEDull;
  constexpr size_t kRandom = kValueBytes / 2;
  for (size_t i = 0; i < kRandom; i += 8) {
    uint64_t r = SplitMix64(&state);
    for (size_t j = 0; j < 8 && i + j < kRandom; ++j) {
      // Printable characters, like db_bench's random strings.
      out[i + j] = static_cast<char>(' ' + (((r >> (8 * j)) & 0xff) * 95 >> 8));
    }
  }
  std::memcpy(out + kRandom, out, kValueBytes - kRandom);
}

// Key and value buffers for one thread.
struct Record {
  char key[kKeyBytes];
  char value[kValueBytes];
  std::string_view Key(uint64_t index) {
    FormatKey(index, key);
    return {key, kKeyBytes};
  }
  std::string_view Value(uint64_t index, uint32_t version) {
    FormatValue(index, version, value);
    return {value, kValueBytes};
  }
};

// A seeded permutation of [0, n) (Fisher-Yates with Rng).
inline std::vector<uint32_t> Permutation(uint64_t n, uint64_t seed) {
  std::vector<uint32_t> p(n);
  for (uint64_t i = 0; i < n; ++i) p[i] = static_cast<uint32_t>(i);
  Rng rng(seed);
  for (uint64_t i = n; i > 1; --i) {
    uint64_t j = rng.Uniform(i);
    std::swap(p[i - 1], p[j]);
  }
  return p;
}

// YCSB's scrambled zipfian distribution over [0, n) with theta 0.99: a
// zipfian rank (Gray et al., "Quickly generating billion-record synthetic
// databases") hashed so that the hot keys are spread over the key space.
class ScrambledZipfian {
 public:
  explicit ScrambledZipfian(uint64_t n, double theta = 0.99) : n_(n) {
    double zetan = 0;
    for (uint64_t i = 1; i <= n; ++i) zetan += 1.0 / std::pow(static_cast<double>(i), theta);
    zetan_ = zetan;
    alpha_ = 1.0 / (1.0 - theta);
    double zeta2 = 1.0 + std::pow(0.5, theta);
    half_pow_theta_ = std::pow(0.5, theta);
    eta_ = (1.0 - std::pow(2.0 / static_cast<double>(n), 1.0 - theta)) / (1.0 - zeta2 / zetan);
  }

  uint64_t Next(Rng* rng) const {
    double u = rng->UniformDouble();
    double uz = u * zetan_;
    uint64_t rank;
    if (uz < 1.0) {
      rank = 0;
    } else if (uz < 1.0 + half_pow_theta_) {
      rank = 1;
    } else {
      rank =
          static_cast<uint64_t>(static_cast<double>(n_) * std::pow(eta_ * u - eta_ + 1.0, alpha_));
      if (rank >= n_) rank = n_ - 1;
    }
    return Fnv64(rank) % n_;
  }

 private:
  static uint64_t Fnv64(uint64_t v) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (int i = 0; i < 8; ++i) {
      h ^= v & 0xff;
      h *= 0x100000001B3ull;
      v >>= 8;
    }
    return h;
  }

  uint64_t n_;
  double zetan_ = 0;
  double alpha_ = 0;
  double eta_ = 0;
  double half_pow_theta_ = 0;
};

}  // namespace arenakv::compare

#endif  // ARENAKV_BENCH_COMPARE_DATA_GEN_H_
