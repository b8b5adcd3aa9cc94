/*
 * tomlplusplus behind the C API of toml_shim.h. The parsed toml::table is copied
 * into malloc'd sp_toml_node trees; tomlplusplus keeps a table's keys sorted, so
 * entries are re-ordered by where their keys are written. No exception leaves
 * this file.
 */
#include "toml_shim.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <toml++/toml.h>

namespace {

char *copy_str(const char *s, size_t n) {
    char *p = static_cast<char *>(std::malloc(n + 1));
    if (!p) throw std::bad_alloc();
    std::memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void set_pos(sp_toml_node *out, const toml::source_region &r) {
    out->line = r.begin.line ? static_cast<int>(r.begin.line) : 1;
    out->col = r.begin.column ? static_cast<int>(r.begin.column) : 1;
}

sp_toml_node *alloc_nodes(size_t n) {
    if (n == 0) return nullptr;
    void *p = std::calloc(n, sizeof(sp_toml_node));
    if (!p) throw std::bad_alloc();
    return static_cast<sp_toml_node *>(p);
}

bool before(const toml::source_position &a, const toml::source_position &b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
}

// Fills *out (zeroed by the caller) from n; on bad_alloc *out holds what was
// copied so far, which sp_toml_free releases.
void convert(const toml::node &n, sp_toml_node *out) {
    set_pos(out, n.source());
    switch (n.type()) {
    case toml::node_type::table: {
        out->kind = SP_TOML_TABLE;
        const toml::table &t = *n.as_table();
        std::vector<std::pair<const toml::key *, const toml::node *>> entries;
        for (auto &&[k, v] : t) entries.emplace_back(&k, &v);
        std::stable_sort(entries.begin(), entries.end(), [](const auto &a, const auto &b) {
            return before(a.first->source().begin, b.first->source().begin);
        });
        out->items = alloc_nodes(entries.size());
        for (const auto &[k, v] : entries) {
            sp_toml_node *e = &out->items[out->nitems++];
            e->key = copy_str(k->data(), k->length());
            toml::source_region kr = k->source();
            e->key_line = kr.begin.line ? static_cast<int>(kr.begin.line) : 1;
            e->key_col = kr.begin.column ? static_cast<int>(kr.begin.column) : 1;
            convert(*v, e);
        }
        break;
    }
    case toml::node_type::array: {
        out->kind = SP_TOML_ARRAY;
        const toml::array &a = *n.as_array();
        out->items = alloc_nodes(a.size());
        for (const toml::node &v : a) convert(v, &out->items[out->nitems++]);
        break;
    }
    case toml::node_type::string: {
        out->kind = SP_TOML_STRING;
        const std::string &s = n.as_string()->get();
        out->str = copy_str(s.data(), s.size());
        out->len = s.size();
        break;
    }
    case toml::node_type::integer:
        out->kind = SP_TOML_INTEGER;
        out->integer = n.as_integer()->get();
        break;
    case toml::node_type::floating_point:
        out->kind = SP_TOML_FLOAT;
        out->real = n.as_floating_point()->get();
        break;
    case toml::node_type::boolean:
        out->kind = SP_TOML_BOOL;
        out->integer = n.as_boolean()->get() ? 1 : 0;
        break;
    default:
        out->kind = SP_TOML_OTHER;
        break;
    }
}

void free_children(sp_toml_node *n) {
    for (int i = 0; i < n->nitems; i++) free_children(&n->items[i]);
    std::free(n->items);
    std::free(n->key);
    std::free(n->str);
}

void put_err(char *err, size_t errlen, std::string_view msg) {
    if (!err || errlen == 0) return;
    size_t n = std::min(msg.size(), errlen - 1);
    std::memcpy(err, msg.data(), n);
    err[n] = '\0';
}

} // namespace

extern "C" int sp_toml_parse(const char *text, size_t len, const char *name,
                             sp_toml_node **root, char *err, size_t errlen, int *line,
                             int *col) {
    *root = nullptr;
    *line = *col = 1;
    sp_toml_node *r = nullptr;
    try {
        toml::table t = toml::parse(std::string_view(text, len),
                                    std::string_view(name ? name : ""));
        r = alloc_nodes(1);
        convert(t, r);
        r->line = r->col = 1; // the root table starts where the file starts
        *root = r;
        return 0;
    } catch (const toml::parse_error &e) {
        put_err(err, errlen, e.description());
        const toml::source_position &p = e.source().begin;
        *line = p.line ? static_cast<int>(p.line) : 1;
        *col = p.column ? static_cast<int>(p.column) : 1;
    } catch (const std::bad_alloc &) {
        put_err(err, errlen, "out of memory while reading the TOML document");
    } catch (...) {
        put_err(err, errlen, "unexpected error in the TOML parser");
    }
    sp_toml_free(r);
    return -1;
}

extern "C" void sp_toml_free(sp_toml_node *root) {
    if (!root) return;
    free_children(root);
    std::free(root);
}

extern "C" const sp_toml_node *sp_toml_get(const sp_toml_node *table, const char *key) {
    if (!table || table->kind != SP_TOML_TABLE) return nullptr;
    for (int i = 0; i < table->nitems; i++)
        if (std::strcmp(table->items[i].key, key) == 0) return &table->items[i];
    return nullptr;
}

extern "C" const char *sp_toml_kind_name(sp_toml_kind kind) {
    switch (kind) {
    case SP_TOML_TABLE: return "a table";
    case SP_TOML_ARRAY: return "an array";
    case SP_TOML_STRING: return "a string";
    case SP_TOML_INTEGER: return "an integer";
    case SP_TOML_FLOAT: return "a float";
    case SP_TOML_BOOL: return "a boolean";
    default: return "a date/time";
    }
}
