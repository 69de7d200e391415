/* SPDX-License-Identifier: MIT */
/* fuzz_http_chunked.c: chunk framing. The fuzz bytes follow a fixed head announcing a chunked
 * body, so every input reaches the chunk-size, extension, data and trailer states. The first
 * byte picks options (lenient_lf, small limits; bit 2: a response head instead of a request
 * head), the second the feed steps (see http_fuzz.h). */
#include "http_fuzz.h"

static const char req_head[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
static const char resp_head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_opts o;
    bool is_resp;
    const char *head;
    size_t head_len, len;
    char *msg;

    if (size < 2) return 0;
    is_resp = (data[0] & 4) != 0;
    o = fuzz_opts_decode(is_resp ? HTTP_RESPONSE : HTTP_REQUEST, data[0], data[1]);
    /* the fixed head must parse under every limit profile */
    o.lim.max_request_line = SH_MAX(o.lim.max_request_line, 64u);
    o.lim.max_field_line = SH_MAX(o.lim.max_field_line, 64u);
    o.lim.max_head = SH_MAX(o.lim.max_head, 256u);
    o.lim.max_fields = SH_MAX(o.lim.max_fields, 2u);
    o.lim.max_method = SH_MAX(o.lim.max_method, 4u);
    o.first_method = o.next_method = HTTP_M_GET;
    head = is_resp ? resp_head : req_head;
    head_len = is_resp ? sizeof(resp_head) - 1 : sizeof(req_head) - 1;
    len = head_len + size - 2;
    msg = sh_malloc(len);
    if (!msg) return 0;
    memcpy(msg, head, head_len);
    memcpy(msg + head_len, data + 2, size - 2);
    fuzz_http_run(&o, msg, len);
    sh_free(msg);
    return 0;
}
