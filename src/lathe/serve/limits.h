// Caps on every length a client controls in `lathe serve`, in one place so docs/serve.md can list
// them and the tests can check each one. A request beyond a cap gets an OpenAI-shaped error naming
// what was too long (400 for request fields, 413 for the body, 431 for the header, 408 for a
// request that arrives too slowly) instead of costing the server memory or time.
#pragma once
#include <cstddef>

namespace lathe::serve {

// HTTP framing (enforced while reading, in http_guard.cpp, before anything is buffered).
inline constexpr size_t kMaxHeaderBytes = 64 * 1024;  // request line + all header lines (431)
inline constexpr int kMaxHeaderCount = 100;           // header lines (431)
inline constexpr size_t kMaxChunkLineBytes = 1024;    // one chunk-size line of a chunked body, extensions included
inline constexpr double kDefaultHeaderTimeoutS = 10;  // the whole request head must arrive within this (408)
inline constexpr double kBodyTimeoutS = 60;           // the whole body must arrive within this (408)
inline constexpr double kReadIdleTimeoutS = 5;        // no byte for this long while reading a request: closed
inline constexpr double kWriteTimeoutS = 5;           // a client that takes no byte for this long is dropped
inline constexpr double kKeepAliveIdleS = 5;          // an idle keep-alive connection is closed after this
inline constexpr int kKeepAliveMaxRequests = 100;     // requests on one connection, then it is closed
inline constexpr int kDefaultMaxConnectionsPerClient = 32;  // open connections per client address (429 beyond)
inline constexpr double kLingerS = 1;                 // after refusing a body, discard its rest this long so the
                                                      // client reads the error instead of a reset

// Request bodies (openai_protocol.cpp). The body itself is capped by --max-body-bytes (413).
inline constexpr int kMaxRequestJsonDepth = 64;            // nesting of arrays/objects in a request body (400)
inline constexpr size_t kMaxMessages = 4096;        // chat messages in one request (400, param "messages")
inline constexpr size_t kMaxStopStrings = 4;        // OpenAI's limit (400, param "stop")
inline constexpr size_t kMaxStopStringBytes = 512;  // each stop string (400, param "stop")
inline constexpr size_t kMaxFeedbackTags = 64;      // tags on one feedback record (400, param "tags")
inline constexpr size_t kMaxFeedbackTagBytes = 256; // each tag (400, param "tags")
// Prompt tokens + max_tokens must fit the served context (--ctx): 400 context_length_exceeded naming
// messages/prompt or max_tokens. n must be 1 (400, param "n").

// Shutdown: after SIGINT/SIGTERM, in-flight generations are cancelled at their next step; if the
// server has still not drained after this long, the process exits anyway (status 1).
inline constexpr double kDrainTimeoutS = 15;
// How long stop() waits for cancelled answers to be written before closing the listener.
inline constexpr double kStreamDrainS = 3;

}  // namespace lathe::serve
