/* UTF-8 validation and decoding, and GPT-2's byte <-> character map that lets byte-level
 * BPE store every byte sequence as a printable string. */
#include "tokenizer/tokenizer_internal.h"

#include <string.h>

/* Length of the sequence a lead byte starts, 0 for a byte that cannot lead. */
static int sequence_length(uint8_t lead)
{
    if (lead < 0x80)
        return 1;
    if (lead >= 0xC2 && lead <= 0xDF)
        return 2;
    if (lead >= 0xE0 && lead <= 0xEF)
        return 3;
    if (lead >= 0xF0 && lead <= 0xF4)
        return 4;
    return 0;
}

static bool is_continuation(uint8_t byte)
{
    return (byte & 0xC0) == 0x80;
}

/* Rejects overlong forms, surrogates and code points above U+10FFFF (RFC 3629). */
static bool second_byte_allowed(uint8_t lead, uint8_t second)
{
    if (lead == 0xE0)
        return second >= 0xA0;
    if (lead == 0xED)
        return second <= 0x9F;
    if (lead == 0xF0)
        return second >= 0x90;
    if (lead == 0xF4)
        return second <= 0x8F;
    return true;
}

size_t al_utf8_invalid_offset(const char *text, size_t length)
{
    const uint8_t *bytes = (const uint8_t *)text;
    size_t i = 0;
    while (i < length) {
        if (bytes[i] < 0x80) {
            i++;
            continue;
        }
        int n = sequence_length(bytes[i]);
        if (n == 0 || i + (size_t)n > length || !second_byte_allowed(bytes[i], bytes[i + 1]))
            return i;
        for (int k = 1; k < n; k++)
            if (!is_continuation(bytes[i + k]))
                return i;
        i += (size_t)n;
    }
    return length;
}

uint32_t al_utf8_next(const char *text, size_t length, size_t *position)
{
    const uint8_t *bytes = (const uint8_t *)text + *position;
    size_t left = length - *position;
    int n = sequence_length(bytes[0]);
    if (n == 0 || (size_t)n > left)
        n = 1; /* callers validate first; this only keeps a bad byte from overrunning */
    uint32_t code = n == 1 ? bytes[0] : (uint32_t)(bytes[0] & (0x7F >> n));
    for (int k = 1; k < n; k++)
        code = (code << 6) | (bytes[k] & 0x3F);
    *position += (size_t)n;
    return code;
}

static bool byte_is_printable_in_gpt2_map(int byte)
{
    return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
}

/* Printable bytes stand for themselves; the others, in byte order, take the characters
 * from U+0100 on (so space becomes U+0120 'Ġ' and newline U+010A 'Ċ'). */
void al_byte_unicode_init(struct al_byte_unicode *map)
{
    uint32_t next_free = 256;
    for (int byte = 0; byte < 256; byte++) {
        if (byte_is_printable_in_gpt2_map(byte)) {
            map->code_of_byte[byte] = (uint32_t)byte;
        } else {
            map->byte_of_shifted[next_free - 256] = (uint8_t)byte;
            map->code_of_byte[byte] = next_free++;
        }
    }
}

static int byte_of_code(const struct al_byte_unicode *map, uint32_t code)
{
    if (code < 256 && byte_is_printable_in_gpt2_map((int)code))
        return (int)code;
    if (code >= 256 && code < 256 + AL_BYTE_UNICODE_SHIFTED)
        return map->byte_of_shifted[code - 256];
    return -1;
}

long al_byte_unicode_to_raw(const struct al_byte_unicode *map, const char *text, size_t length,
                            char *raw)
{
    if (al_utf8_invalid_offset(text, length) != length)
        return -1;
    size_t position = 0, raw_length = 0;
    while (position < length) {
        int byte = byte_of_code(map, al_utf8_next(text, length, &position));
        if (byte < 0)
            return -1;
        raw[raw_length++] = (char)byte;
    }
    return (long)raw_length;
}
