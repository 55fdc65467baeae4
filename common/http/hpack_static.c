/*
 * The fixed data of HPACK: the static table (RFC 7541 Appendix A) and
 * the Huffman code (Appendix B). The code is canonical (codes of one
 * length are consecutive and follow those of the shorter lengths, in
 * symbol order), so the counts per length and the symbols in code order
 * are all a decoder needs: the code values follow from them.
 */
#include "hpack.h"

#define S(n, v) {(n), (v), sizeof(n) - 1, sizeof(v) - 1}

const struct dynobs_hpack_static dynobs__hpack_static[DYNOBS_HPACK_STATIC_COUNT] = {
    S(":authority", ""),
    S(":method", "GET"),
    S(":method", "POST"),
    S(":path", "/"),
    S(":path", "/index.html"),
    S(":scheme", "http"),
    S(":scheme", "https"),
    S(":status", "200"),
    S(":status", "204"),
    S(":status", "206"),
    S(":status", "304"),
    S(":status", "400"),
    S(":status", "404"),
    S(":status", "500"),
    S("accept-charset", ""),
    S("accept-encoding", "gzip, deflate"),
    S("accept-language", ""),
    S("accept-ranges", ""),
    S("accept", ""),
    S("access-control-allow-origin", ""),
    S("age", ""),
    S("allow", ""),
    S("authorization", ""),
    S("cache-control", ""),
    S("content-disposition", ""),
    S("content-encoding", ""),
    S("content-language", ""),
    S("content-length", ""),
    S("content-location", ""),
    S("content-range", ""),
    S("content-type", ""),
    S("cookie", ""),
    S("date", ""),
    S("etag", ""),
    S("expect", ""),
    S("expires", ""),
    S("from", ""),
    S("host", ""),
    S("if-match", ""),
    S("if-modified-since", ""),
    S("if-none-match", ""),
    S("if-range", ""),
    S("if-unmodified-since", ""),
    S("last-modified", ""),
    S("link", ""),
    S("location", ""),
    S("max-forwards", ""),
    S("proxy-authenticate", ""),
    S("proxy-authorization", ""),
    S("range", ""),
    S("referer", ""),
    S("refresh", ""),
    S("retry-after", ""),
    S("server", ""),
    S("set-cookie", ""),
    S("strict-transport-security", ""),
    S("transfer-encoding", ""),
    S("user-agent", ""),
    S("vary", ""),
    S("via", ""),
    S("www-authenticate", ""),
};

const uint8_t dynobs__hpack_huff_count[31] = {
    0, 0, 0, 0, 0, 10, 26, 32, 6, 0, 5, 3, 2, 6, 2, 3, 0, 0, 0, 3, 8, 13, 26, 29, 12, 4,
    15, 19, 29, 0, 4,
};

const uint16_t dynobs__hpack_huff_sym[257] = {
    48, 49, 50, 97, 99, 101, 105, 111, 115, 116, 32, 37, 45, 46, 47, 51, 52, 53, 54, 55,
    56, 57, 61, 65, 95, 98, 100, 102, 103, 104, 108, 109, 110, 112, 114, 117, 58, 66, 67,
    68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 89,
    106, 107, 113, 118, 119, 120, 121, 122, 38, 42, 44, 59, 88, 90, 33, 34, 40, 41, 63, 39,
    43, 124, 35, 62, 0, 36, 64, 91, 93, 126, 94, 125, 60, 96, 123, 92, 195, 208, 128, 130,
    131, 162, 184, 194, 224, 226, 153, 161, 167, 172, 176, 177, 179, 209, 216, 217, 227,
    229, 230, 129, 132, 133, 134, 136, 146, 154, 156, 160, 163, 164, 169, 170, 173, 178,
    181, 185, 186, 187, 189, 190, 196, 198, 228, 232, 233, 1, 135, 137, 138, 139, 140, 141,
    143, 147, 149, 150, 151, 152, 155, 157, 158, 165, 166, 168, 174, 175, 180, 182, 183,
    188, 191, 197, 231, 239, 9, 142, 144, 145, 148, 159, 171, 206, 215, 225, 236, 237, 199,
    207, 234, 235, 192, 193, 200, 201, 202, 205, 210, 213, 218, 219, 238, 240, 242, 243,
    255, 203, 204, 211, 212, 214, 221, 222, 223, 241, 244, 245, 246, 247, 248, 250, 251,
    252, 253, 254, 2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25,
    26, 27, 28, 29, 30, 31, 127, 220, 249, 10, 13, 22, 256,
};
