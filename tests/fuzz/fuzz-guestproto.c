/* The host side of the guest agent's channel (lib/tier2/session.c): the guest
 * is untrusted once the job runs, so whatever bytes it sends, in whatever
 * pieces, parsing stays within bounds, keeps the stream caps, and never
 * writes a file (no outputs dir here). */
#include "fuzz.h"
#include "../../lib/tier2/t2-internal.h"
#include "substrate/guestproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    session s;
    t2_session_init(&s);
    /* the first byte chooses where the stream is cut in two reads */
    size_t cut = size ? data[0] % (size + 1) : 0;
    t2_session_feed(&s, data, cut);
    t2_session_feed(&s, data + cut, size - cut);
    FUZZ_ASSERT(s.so.data.len <= SUB_JOB_STREAM_MAX && s.se.data.len <= SUB_JOB_STREAM_MAX);
    FUZZ_ASSERT(s.so.total >= s.so.data.len && s.se.total >= s.se.data.len);
    FUZZ_ASSERT(s.protocol_error || s.in.len < SUB_GP_HDR + SUB_GP_MAX_PAYLOAD);
    json_t *o = t2_stream_json(&s.so), *e = t2_stream_json(&s.se);
    FUZZ_ASSERT(o && e && json_is_string(json_object_get(o, "text")));
    json_decref(o);
    json_decref(e);
    for (size_t i = 0; i < json_array_size(s.probes); i++)
        FUZZ_ASSERT(json_is_string(json_object_get(json_array_get(s.probes, i), "target")));
    for (size_t i = 0; i < json_array_size(s.outputs); i++)
        FUZZ_ASSERT(!json_object_get(json_array_get(s.outputs, i), "saved_to"));
    t2_session_done(&s);
    return 0;
}
