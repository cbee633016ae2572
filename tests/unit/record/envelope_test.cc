#include "record/envelope.h"

#include <doctest/doctest.h>

#include <string>

using namespace qw;
using namespace qw::record;

namespace {

// 2023-11-14T22:13:20Z.
constexpr Nanos kT0 = 1700000000LL * kSecond;

// A Fluent Bit kafka output record (format json) after the kubernetes filter.
constexpr const char* kFluentBitRecord =
    R"({"@timestamp":1700000000.123456,"log":"I[2023-11-14|22:13:20.123] committed state module=state height=5\n","stream":"stdout","time":"2023-11-14T22:13:20.123456789Z","kubernetes":{"pod_name":"val-0","namespace_name":"cosmos","container_name":"node","labels":{"app":"gaia"}}})";

// A Vector kafka sink record (encoding.codec = "json").
constexpr const char* kVectorRecord =
    R"({"message":"I[2023-11-14|22:13:20.123] committed state module=state height=6","timestamp":"2023-11-14T22:13:20.123456789Z","kubernetes":{"pod_name":"val-1","pod_namespace":"cosmos","container_name":"node"},"source_type":"kubernetes_logs","stream":"stdout"})";

}  // namespace

TEST_CASE("envelope format names") {
  for (EnvelopeFormat f : {EnvelopeFormat::kAuto, EnvelopeFormat::kFluentBit,
                           EnvelopeFormat::kVector, EnvelopeFormat::kRaw}) {
    EnvelopeFormat parsed = EnvelopeFormat::kRaw;
    REQUIRE(ParseEnvelopeFormat(EnvelopeFormatName(f), &parsed));
    CHECK(parsed == f);
  }
  CHECK(std::string(EnvelopeFormatName(EnvelopeFormat::kFluentBit)) == "fluentbit");
  CHECK(std::string(EnvelopeFormatName(EnvelopeFormat::kVector)) == "vector");
  EnvelopeFormat f;
  CHECK_FALSE(ParseEnvelopeFormat("fluent-bit", &f));
  CHECK_FALSE(ParseEnvelopeFormat("", &f));
}

TEST_CASE("Fluent Bit records") {
  EnvelopeDecoder dec;
  Envelope e;
  std::string why;
  REQUIRE(dec.Decode(EnvelopeFormat::kFluentBit, kFluentBitRecord, "ignored-key", &e, &why));
  CHECK(e.format == EnvelopeFormat::kFluentBit);
  CHECK(e.message == "I[2023-11-14|22:13:20.123] committed state module=state height=5");
  // `time` (the runtime's stamp, ns) wins over `@timestamp`.
  CHECK(e.time == kT0 + 123456789);
  CHECK(e.namespace_ == "cosmos");
  CHECK(e.pod == "val-0");
  CHECK(e.container == "node");

  // Without `time`: `@timestamp`, epoch seconds as a number, within 1 µs.
  REQUIRE(dec.Decode(EnvelopeFormat::kFluentBit, R"({"@timestamp":1700000000.123456,"log":"x\n"})",
                     "", &e, &why));
  CHECK(e.time >= kT0 + 123456000 - 1000);
  CHECK(e.time <= kT0 + 123456000 + 1000);
  CHECK(e.message == "x");
  CHECK(e.namespace_.empty());
  CHECK(e.pod.empty());
  CHECK(e.container.empty());

  // A `time` that does not parse falls back to `@timestamp`.
  REQUIRE(dec.Decode(EnvelopeFormat::kFluentBit,
                     R"({"time":"yesterday","@timestamp":"2023-11-14T22:13:21.5Z","log":"x"})", "",
                     &e, &why));
  CHECK(e.time == kT0 + kSecond + 500 * kMillisecond);

  // No usable time at all: kNoTime, not an error.
  REQUIRE(
      dec.Decode(EnvelopeFormat::kFluentBit, R"({"time":"yesterday","log":"x"})", "", &e, &why));
  CHECK(e.time == kNoTime);
  REQUIRE(dec.Decode(EnvelopeFormat::kFluentBit, R"({"time":true,"log":"x"})", "", &e, &why));
  CHECK(e.time == kNoTime);

  // Integer epoch seconds; a negative fraction rounds to the right instant.
  REQUIRE(dec.Decode(EnvelopeFormat::kFluentBit, R"({"time":1700000000,"log":"x"})", "", &e, &why));
  CHECK(e.time == kT0);
  REQUIRE(dec.Decode(EnvelopeFormat::kFluentBit, R"({"time":-1.25,"log":"x"})", "", &e, &why));
  CHECK(e.time == -kSecond - 250 * kMillisecond);
  // Beyond the range of Nanos: no time.
  REQUIRE(dec.Decode(EnvelopeFormat::kFluentBit, R"({"time":1e300,"log":"x"})", "", &e, &why));
  CHECK(e.time == kNoTime);
  REQUIRE(dec.Decode(EnvelopeFormat::kFluentBit, R"({"time":18446744073709551615,"log":"x"})", "",
                     &e, &why));
  CHECK(e.time == kNoTime);
}

TEST_CASE("Fluent Bit duplicate keys: the first wins") {
  EnvelopeDecoder dec;
  Envelope e;
  std::string why;
  REQUIRE(dec.Decode(
      EnvelopeFormat::kFluentBit,
      R"({"@timestamp":1700000001.5,"@timestamp":1700000002.5,"log":"first\n","log":"second\n","kubernetes":{"pod_name":"val-0","pod_name":"val-9"},"kubernetes":{"namespace_name":"other"}})",
      "", &e, &why));
  CHECK(e.message == "first");
  CHECK(e.time == kT0 + kSecond + 500 * kMillisecond);
  CHECK(e.pod == "val-0");
  // The second "kubernetes" object is never consulted.
  CHECK(e.namespace_.empty());

  REQUIRE(dec.Decode(EnvelopeFormat::kFluentBit,
                     R"({"time":"2023-11-14T22:13:20Z","time":"2023-11-14T22:13:25Z","log":"x"})",
                     "", &e, &why));
  CHECK(e.time == kT0);
  // A first "log" that is not a string is not rescued by a second one.
  CHECK_FALSE(dec.Decode(EnvelopeFormat::kFluentBit, R"({"log":1,"log":"x"})", "", &e, &why));
  CHECK(why == "message is not a string");
}

TEST_CASE("Vector records") {
  EnvelopeDecoder dec;
  Envelope e;
  std::string why;
  REQUIRE(dec.Decode(EnvelopeFormat::kVector, kVectorRecord, "", &e, &why));
  CHECK(e.format == EnvelopeFormat::kVector);
  CHECK(e.message == "I[2023-11-14|22:13:20.123] committed state module=state height=6");
  CHECK(e.time == kT0 + 123456789);
  CHECK(e.namespace_ == "cosmos");
  CHECK(e.pod == "val-1");
  CHECK(e.container == "node");

  // Fluent Bit's field names mean nothing to Vector.
  REQUIRE(dec.Decode(
      EnvelopeFormat::kVector,
      R"({"message":"x","time":"2023-11-14T22:13:20Z","kubernetes":{"namespace_name":"cosmos"}})",
      "", &e, &why));
  CHECK(e.time == kNoTime);
  CHECK(e.namespace_.empty());
  // An offset is honoured.
  REQUIRE(dec.Decode(EnvelopeFormat::kVector,
                     R"({"message":"x","timestamp":"2023-11-15T00:13:20.000000001+02:00"})", "", &e,
                     &why));
  CHECK(e.time == kT0 + 1);
}

TEST_CASE("messages: escapes, newlines") {
  EnvelopeDecoder dec;
  Envelope e;
  std::string why;
  REQUIRE(dec.Decode(EnvelopeFormat::kVector, R"({"message":"say \"hi\" caf\u00e9\r\n"})", "", &e,
                     &why));
  CHECK(e.message == "say \"hi\" caf\xc3\xa9");
  // Multi-line: embedded newlines stay, only one trailing newline goes.
  REQUIRE(
      dec.Decode(EnvelopeFormat::kFluentBit, R"({"log":"panic: x\n\tat y\n\n"})", "", &e, &why));
  CHECK(e.message == "panic: x\n\tat y\n");
  REQUIRE(dec.Decode(EnvelopeFormat::kFluentBit, R"({"log":""})", "", &e, &why));
  CHECK(e.message.empty());
  REQUIRE(dec.Decode(EnvelopeFormat::kFluentBit, R"({"log":"\r"})", "", &e, &why));
  CHECK(e.message == "\r");
}

TEST_CASE("raw records") {
  EnvelopeDecoder dec;
  Envelope e;
  std::string why;
  std::string value = "I[2023-11-14|22:13:20.123] committed state height=7\r\n";
  REQUIRE(dec.Decode(EnvelopeFormat::kRaw, value, "val-2", &e, &why));
  CHECK(e.format == EnvelopeFormat::kRaw);
  CHECK(e.message == "I[2023-11-14|22:13:20.123] committed state height=7");
  CHECK(e.pod == "val-2");
  CHECK(e.time == kNoTime);
  CHECK(e.namespace_.empty());
  CHECK(e.container.empty());
  // The envelope does not point into the caller's buffers.
  value.assign(value.size(), '#');
  CHECK(e.message == "I[2023-11-14|22:13:20.123] committed state height=7");

  // JSON is not looked into when the format is raw.
  REQUIRE(dec.Decode(EnvelopeFormat::kRaw, R"({"log":"x\n"})", "", &e, &why));
  CHECK(e.message == R"({"log":"x\n"})");
  CHECK(e.pod.empty());
  REQUIRE(dec.Decode(EnvelopeFormat::kRaw, "", "", &e, &why));
  CHECK(e.message.empty());
}

TEST_CASE("auto detection") {
  EnvelopeDecoder dec;
  CHECK(dec.Detect(kFluentBitRecord) == EnvelopeFormat::kFluentBit);
  CHECK(dec.Detect(kVectorRecord) == EnvelopeFormat::kVector);
  CHECK(dec.Detect("I[2023-11-14|22:13:20.123] committed state height=5") == EnvelopeFormat::kRaw);
  // An application's own JSON line, shipped raw.
  CHECK(dec.Detect(R"({"level":"info","msg":"committed state","height":5})") ==
        EnvelopeFormat::kRaw);
  CHECK(dec.Detect(R"({"log":"x")") == EnvelopeFormat::kRaw);
  CHECK(dec.Detect(R"(["log"])") == EnvelopeFormat::kRaw);
  CHECK(dec.Detect("") == EnvelopeFormat::kRaw);
  // Both keys: Fluent Bit (e.g. Merge_Log lifted the app's "message").
  CHECK(dec.Detect(R"( {"message":"m","log":"l"})") == EnvelopeFormat::kFluentBit);

  Envelope e;
  std::string why;
  REQUIRE(dec.Decode(EnvelopeFormat::kAuto, kFluentBitRecord, "k", &e, &why));
  CHECK(e.format == EnvelopeFormat::kFluentBit);
  CHECK(e.pod == "val-0");
  CHECK(e.time == kT0 + 123456789);
  REQUIRE(dec.Decode(EnvelopeFormat::kAuto, kVectorRecord, "k", &e, &why));
  CHECK(e.format == EnvelopeFormat::kVector);
  CHECK(e.pod == "val-1");
  REQUIRE(dec.Decode(EnvelopeFormat::kAuto, "committed state\n", "val-2", &e, &why));
  CHECK(e.format == EnvelopeFormat::kRaw);
  CHECK(e.message == "committed state");
  CHECK(e.pod == "val-2");
  // Broken JSON under auto is a raw line, not an error.
  REQUIRE(dec.Decode(EnvelopeFormat::kAuto, R"({"log":"x)", "val-2", &e, &why));
  CHECK(e.format == EnvelopeFormat::kRaw);
  CHECK(e.message == R"({"log":"x)");

  // Detect (which parses) leaves the last decoded envelope intact.
  REQUIRE(dec.Decode(EnvelopeFormat::kAuto, kVectorRecord, "", &e, &why));
  CHECK(dec.Detect(kFluentBitRecord) == EnvelopeFormat::kFluentBit);
  CHECK(e.message == "I[2023-11-14|22:13:20.123] committed state module=state height=6");
  CHECK(e.pod == "val-1");
  CHECK(e.namespace_ == "cosmos");
}

TEST_CASE("configured field paths") {
  EnvelopeFields fields;
  fields.message = "msg";
  fields.pod = "k8s.pod";
  EnvelopeDecoder dec(fields);
  Envelope e;
  std::string why;
  const char* rec =
      R"({"msg":"hello\n","k8s":{"pod":"val-3"},"time":"2023-11-14T22:13:20Z","kubernetes":{"pod_name":"ignored","namespace_name":"cosmos","container_name":"node"}})";
  CHECK(dec.Detect(rec) == EnvelopeFormat::kFluentBit);
  REQUIRE(dec.Decode(EnvelopeFormat::kAuto, rec, "", &e, &why));
  CHECK(e.format == EnvelopeFormat::kFluentBit);
  CHECK(e.message == "hello");
  CHECK(e.pod == "val-3");
  // Unconfigured fields keep the format's defaults.
  CHECK(e.namespace_ == "cosmos");
  CHECK(e.container == "node");
  CHECK(e.time == kT0);

  // The configured message counts for Vector too; Vector's own fields pick it.
  const char* vrec =
      R"({"msg":"hi","timestamp":"2023-11-14T22:13:21Z","k8s":{"pod":"val-4"},"kubernetes":{"pod_namespace":"cosmos"}})";
  CHECK(dec.Detect(vrec) == EnvelopeFormat::kVector);
  REQUIRE(dec.Decode(EnvelopeFormat::kAuto, vrec, "", &e, &why));
  CHECK(e.format == EnvelopeFormat::kVector);
  CHECK(e.message == "hi");
  CHECK(e.time == kT0 + kSecond);
  CHECK(e.pod == "val-4");
  CHECK(e.namespace_ == "cosmos");
  CHECK(dec.Detect(R"({"msg":"hi","kubernetes":{"pod_namespace":"cosmos"}})") ==
        EnvelopeFormat::kVector);

  // The default message keys no longer count.
  CHECK(dec.Detect(R"({"log":"x\n"})") == EnvelopeFormat::kRaw);
  CHECK_FALSE(dec.Decode(EnvelopeFormat::kFluentBit, R"({"log":"x\n"})", "", &e, &why));
  CHECK(why == "no message field 'msg'");

  // Nested message and a configured time, which replaces `time` and `@timestamp`.
  EnvelopeFields nested;
  nested.message = "event.original";
  nested.time = "event.created";
  nested.namespace_ = "meta.ns";
  nested.container = "meta.c";
  EnvelopeDecoder dec2(nested);
  REQUIRE(dec2.Decode(
      EnvelopeFormat::kFluentBit,
      R"({"time":"2023-11-14T22:13:29Z","@timestamp":1700000009,"event":{"original":"line\n","created":1700000003.25},"meta":{"ns":"cosmos","c":7}})",
      "", &e, &why));
  CHECK(e.message == "line");
  CHECK(e.time == kT0 + 3 * kSecond + 250 * kMillisecond);
  CHECK(e.namespace_ == "cosmos");
  CHECK(e.container.empty());  // not a string
  CHECK(e.pod.empty());
  REQUIRE(dec2.Decode(EnvelopeFormat::kFluentBit,
                      R"({"time":"2023-11-14T22:13:29Z","event":{"original":"x"}})", "", &e, &why));
  CHECK(e.time == kNoTime);
  CHECK_FALSE(dec2.Decode(EnvelopeFormat::kVector, R"({"event":"original"})", "", &e, &why));
  CHECK(why == "no message field 'event.original'");
}

TEST_CASE("poison records") {
  EnvelopeDecoder dec;
  Envelope e;
  std::string why;
  CHECK_FALSE(dec.Decode(EnvelopeFormat::kFluentBit, R"({"log":"truncated\n","stream":"std)", "",
                         &e, &why));
  CHECK(why == "not JSON");
  CHECK_FALSE(dec.Decode(EnvelopeFormat::kVector, "plain text line", "", &e, &why));
  CHECK(why == "not JSON");
  CHECK_FALSE(dec.Decode(EnvelopeFormat::kVector, "", "", &e, &why));
  CHECK(why == "not JSON");
  CHECK_FALSE(dec.Decode(EnvelopeFormat::kFluentBit, R"([{"log":"x\n"}])", "", &e, &why));
  CHECK(why == "not a JSON object");
  CHECK_FALSE(dec.Decode(EnvelopeFormat::kVector, R"("message")", "", &e, &why));
  CHECK(why == "not a JSON object");
  CHECK_FALSE(dec.Decode(EnvelopeFormat::kFluentBit, R"({"message":"x"})", "", &e, &why));
  CHECK(why == "no message field 'log'");
  CHECK_FALSE(dec.Decode(EnvelopeFormat::kVector, R"({"log":"x"})", "", &e, &why));
  CHECK(why == "no message field 'message'");
  CHECK_FALSE(dec.Decode(EnvelopeFormat::kFluentBit, R"({"log":42})", "", &e, &why));
  CHECK(why == "message is not a string");
  CHECK_FALSE(dec.Decode(EnvelopeFormat::kVector, R"({"message":null})", "", &e, &why));
  CHECK(why == "message is not a string");
  CHECK_FALSE(dec.Decode(EnvelopeFormat::kVector, R"({"message":{"text":"x"}})", "", &e, &why));
  CHECK(why == "message is not a string");
  // A null `why` is allowed.
  CHECK_FALSE(dec.Decode(EnvelopeFormat::kVector, "x", "", &e, nullptr));
  // The decoder recovers after poison.
  REQUIRE(dec.Decode(EnvelopeFormat::kFluentBit, kFluentBitRecord, "", &e, &why));
  CHECK(e.pod == "val-0");
}
