// The thin C++ layer over libsentencepiece. Everything else in the engine sees the C
// functions of sentencepiece_wrapper.h; no exception leaves this file.
#include "tokenizer/sentencepiece_wrapper.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

extern "C" {
#include "agentlora/error.h"
#include "agentlora/file.h"
}

namespace {

// The model file is a serialized ModelProto. Its field 3 is normalizer_spec, whose field 3
// is add_dummy_prefix. Protobuf merges a repeated embedded-message field into the one
// already parsed, so appending "field 3, 2 bytes long: {field 3 (varint) = 0}" yields the
// same model with add_dummy_prefix switched off, without a protobuf dependency here.
const char kNoDummyPrefixSuffix[] = {0x1a, 0x02, 0x18, 0x00};

// A byte-fallback piece covers one byte of a character whose pieces all report the
// character's first byte as their begin; successive ones cover the next bytes.
size_t piece_offset(const sentencepiece::ImmutableSentencePieceText &spt, const sentencepiece::SentencePieceProcessor &processor,
                    size_t index, size_t base)
{
    auto piece = spt.pieces(static_cast<int>(index));
    size_t offset = piece.begin();
    if (processor.IsByte(static_cast<int>(piece.id()))) {
        size_t run = 0;
        while (run < index) {
            auto earlier = spt.pieces(static_cast<int>(index - run - 1));
            if (!processor.IsByte(static_cast<int>(earlier.id())) || earlier.begin() != piece.begin())
                break;
            run++;
        }
        offset += run;
    }
    return base + offset;
}

}  // namespace

struct al_spm {
    std::string path;
    sentencepiece::SentencePieceProcessor as_trained;
    sentencepiece::SentencePieceProcessor without_dummy_prefix;
};

extern "C" struct al_spm *al_spm_load(const char *path)
{
    size_t size = 0;
    char *bytes = al_file_read_all(path, &size);
    if (!bytes)
        return nullptr;
    try {
        std::string serialized(bytes, size);
        free(bytes);
        bytes = nullptr;
        auto *spm = new al_spm;
        spm->path = path;
        auto status = spm->as_trained.LoadFromSerializedProto(serialized);
        if (status.ok()) {
            serialized.append(kNoDummyPrefixSuffix, sizeof kNoDummyPrefixSuffix);
            status = spm->without_dummy_prefix.LoadFromSerializedProto(serialized);
        }
        if (!status.ok()) {
            delete spm;
            return static_cast<struct al_spm *>(
                al_fail_null("%s: not a SentencePiece model: %s", path, status.ToString().c_str()));
        }
        return spm;
    } catch (const std::exception &error) {
        free(bytes);
        return static_cast<struct al_spm *>(al_fail_null("%s: %s", path, error.what()));
    }
}

extern "C" void al_spm_free(struct al_spm *spm)
{
    delete spm;
}

extern "C" int32_t al_spm_vocab_size(const struct al_spm *spm)
{
    return spm->as_trained.GetPieceSize();
}

extern "C" const char *al_spm_id_to_piece(const struct al_spm *spm, int32_t id)
{
    if (id < 0 || id >= spm->as_trained.GetPieceSize())
        return nullptr;
    return spm->as_trained.IdToPiece(id).c_str();
}

extern "C" int32_t al_spm_piece_to_id(const struct al_spm *spm, const char *piece, size_t length)
{
    try {
        std::string wanted(piece, length);
        int id = spm->as_trained.PieceToId(wanted);
        // SentencePiece answers unk_id for an unknown piece; only a real match counts.
        if (id < 0 || spm->as_trained.IdToPiece(id) != wanted)
            return -1;
        return id;
    } catch (const std::exception &) {
        return -1;
    }
}

extern "C" int32_t al_spm_bos_id(const struct al_spm *spm) { return spm->as_trained.bos_id(); }
extern "C" int32_t al_spm_eos_id(const struct al_spm *spm) { return spm->as_trained.eos_id(); }
extern "C" int32_t al_spm_unk_id(const struct al_spm *spm) { return spm->as_trained.unk_id(); }
extern "C" int32_t al_spm_pad_id(const struct al_spm *spm) { return spm->as_trained.pad_id(); }

static bool id_in_range(const struct al_spm *spm, int32_t id)
{
    return id >= 0 && id < spm->as_trained.GetPieceSize();
}

extern "C" bool al_spm_is_control(const struct al_spm *spm, int32_t id)
{
    return id_in_range(spm, id) && spm->as_trained.IsControl(id);
}

extern "C" bool al_spm_is_unknown(const struct al_spm *spm, int32_t id)
{
    return id_in_range(spm, id) && spm->as_trained.IsUnknown(id);
}

extern "C" bool al_spm_is_byte(const struct al_spm *spm, int32_t id)
{
    return id_in_range(spm, id) && spm->as_trained.IsByte(id);
}

extern "C" int al_spm_encode(const struct al_spm *spm, const char *text, size_t start, size_t end,
                             bool dummy_prefix, struct al_tokens *out)
{
    const auto &processor = dummy_prefix ? spm->as_trained : spm->without_dummy_prefix;
    try {
        sentencepiece::ImmutableSentencePieceText spt;
        auto status = processor.Encode(std::string(text + start, end - start), spt.mutable_proto());
        if (!status.ok())
            return al_fail("%s: encoding failed: %s", spm->path.c_str(), status.ToString().c_str());
        size_t count = spt.pieces_size();
        for (size_t i = 0; i < count; i++) {
            auto id = static_cast<int32_t>(spt.pieces(static_cast<int>(i)).id());
            if (al_tokens_push(out, id, piece_offset(spt, processor, i, start)) != 0)
                return -1;
        }
        return 0;
    } catch (const std::exception &error) {
        return al_fail("%s: encoding failed: %s", spm->path.c_str(), error.what());
    }
}

extern "C" char *al_spm_decode(const struct al_spm *spm, const int32_t *ids, size_t count,
                               bool strip_dummy_prefix, size_t *length)
{
    const auto &processor = strip_dummy_prefix ? spm->as_trained : spm->without_dummy_prefix;
    try {
        std::vector<int> id_list(ids, ids + count);
        for (int id : id_list)
            if (!id_in_range(spm, id))
                return static_cast<char *>(al_fail_null("%s: cannot decode token id %d (vocabulary size %d)",
                                                        spm->path.c_str(), id, al_spm_vocab_size(spm)));
        std::string text;
        auto status = processor.Decode(id_list, &text);
        if (!status.ok())
            return static_cast<char *>(
                al_fail_null("%s: decoding failed: %s", spm->path.c_str(), status.ToString().c_str()));
        char *copy = static_cast<char *>(malloc(text.size() + 1));
        if (!copy)
            return static_cast<char *>(al_fail_null("out of memory decoding %zu tokens", count));
        memcpy(copy, text.data(), text.size());
        copy[text.size()] = '\0';
        *length = text.size();
        return copy;
    } catch (const std::exception &error) {
        return static_cast<char *>(al_fail_null("%s: decoding failed: %s", spm->path.c_str(), error.what()));
    }
}
