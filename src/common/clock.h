// Clock: the wall clock behind a seam, so sinks and timers can be tested
// with a clock the test steps. Detectors never read a clock (they take ticks).
#pragma once

#include <atomic>
#include <chrono>

#include "common/time.h"

namespace qw {

class Clock {
 public:
  virtual ~Clock() = default;
  // Nanoseconds since the Unix epoch. Thread-safe.
  virtual Nanos Now() const = 0;
};

class SystemClock : public Clock {
 public:
  Nanos Now() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  // The process-wide instance.
  static SystemClock* Get() {
    static SystemClock clock;
    return &clock;
  }
};

// A clock that moves only when told to. Thread-safe.
class ManualClock : public Clock {
 public:
  explicit ManualClock(Nanos start) : now_(start) {}
  Nanos Now() const override { return now_.load(); }
  void Set(Nanos t) { now_.store(t); }
  void Advance(Nanos d) { now_.fetch_add(d); }

 private:
  std::atomic<Nanos> now_;
};

}  // namespace qw
