/*
 * sal_image_load: read a whole file, tell its format from its first bytes, hand it
 * to the JPEG or PNG decoder, and convert the result to the channels the model wants
 * as Pillow's convert('RGB') / convert('L') would. Every way a file can be wrong
 * ends here as "path: reason"; nothing is printed and nothing exits.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_internal.h"

int image_fail(const image_src *src, const char *fmt, ...) {
    if (!src->err || !src->errlen) return -1;
    int n = snprintf(src->err, src->errlen, "%s: ", src->path);
    if (n < 0 || (size_t)n >= src->errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(src->err + n, src->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

int image_alloc(sal_image *img, uint32_t w, uint32_t h, int c, const image_src *src) {
    memset(img, 0, sizeof *img);
    if (w == 0 || h == 0)
        return image_fail(src, "image has no pixels (%u x %u)", w, h);
    uint64_t npix = (uint64_t)w * h;
    if (npix > (uint64_t)src->max_pixels)
        return image_fail(src, "image is %u x %u = %llu pixels, above the limit of %lld "
                          "(a decompression bomb, or raise the limit)", w, h,
                          (unsigned long long)npix, (long long)src->max_pixels);
    if (w > INT32_MAX || h > INT32_MAX || npix > SIZE_MAX / 4)
        return image_fail(src, "image is too large (%u x %u)", w, h);
    img->pixels = malloc((size_t)npix * (size_t)c);
    if (!img->pixels)
        return image_fail(src, "out of memory for %u x %u x %d pixels", w, h, c);
    img->width = (int32_t)w;
    img->height = (int32_t)h;
    img->channels = c;
    return 0;
}

void sal_image_free(sal_image *img) {
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* Reads the whole file. Directories, special files, empty and oversized files are
 * refused here with the reason in their own words. */
static int read_whole_file(uint8_t **data, size_t *size, const image_src *src) {
    *data = NULL;
    *size = 0;
    /* O_NONBLOCK: opening a FIFO must not hang the run. */
    int fd = open(src->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return image_fail(src, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return image_fail(src, "cannot stat: %s", strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return image_fail(src, "is a directory, not an image file");
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return image_fail(src, "not a regular file (a device, FIFO or socket)");
    }
    if (st.st_size == 0) {
        close(fd);
        return image_fail(src, "empty file (0 bytes)");
    }
    if ((int64_t)st.st_size > SAL_IMAGE_MAX_FILE_BYTES) {
        close(fd);
        return image_fail(src, "file is %lld bytes, larger than any image salpipe "
                          "accepts (%lld)", (long long)st.st_size,
                          (long long)SAL_IMAGE_MAX_FILE_BYTES);
    }
    size_t want = (size_t)st.st_size;
    uint8_t *buf = malloc(want);
    if (!buf) {
        close(fd);
        return image_fail(src, "out of memory for %zu bytes", want);
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return image_fail(src, "read error: %s", strerror(e));
        }
        if (r == 0) break; /* shrank while we read it: decode what is there */
        got += (size_t)r;
    }
    close(fd);
    if (got == 0) {
        free(buf);
        return image_fail(src, "empty file (0 bytes)");
    }
    *data = buf;
    *size = got;
    return 0;
}

static int has(const uint8_t *d, size_t n, size_t off, const char *magic, size_t len) {
    return n >= off + len && memcmp(d + off, magic, len) == 0;
}

/* Names formats Pillow can open but salpipe does not, so the message can say what the
 * file is. NULL when unknown. */
static const char *other_format(const uint8_t *d, size_t n) {
    static const struct {
        size_t off, len;
        const char *magic, *name;
    } tab[] = {
        {0, 6, "GIF87a", "GIF"},
        {0, 6, "GIF89a", "GIF"},
        {0, 4, "II*\0", "TIFF"},
        {0, 4, "MM\0*", "TIFF"},
        {0, 4, "II+\0", "BigTIFF"},
        {0, 4, "MM\0+", "BigTIFF"},
        {0, 12, "\0\0\0\x0cjP  \r\n\x87\n", "JPEG 2000"},
        {0, 4, "\xff\x4f\xff\x51", "JPEG 2000 codestream"},
        {0, 12, "\0\0\0\x0cJXL \r\n\x87\n", "JPEG XL"},
        {0, 2, "\xff\x0a", "JPEG XL"},
        {0, 4, "8BPS", "Photoshop PSD"},
        {4, 8, "ftypheic", "HEIF"},
        {4, 8, "ftypheix", "HEIF"},
        {4, 8, "ftypmif1", "HEIF"},
        {4, 8, "ftypavif", "AVIF"},
        {0, 4, "%PDF", "PDF"},
        {0, 4, "qoif", "QOI"},
        {0, 4, "\x76\x2f\x31\x01", "OpenEXR"},
        {0, 4, "\0\0\1\0", "Windows icon (ICO)"},
        {0, 4, "icns", "Apple icon (ICNS)"},
        {0, 4, "DDS ", "DirectDraw surface (DDS)"},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (has(d, n, tab[i].off, tab[i].magic, tab[i].len)) return tab[i].name;
    if (has(d, n, 0, "RIFF", 4) && has(d, n, 8, "WEBP", 4)) return "WebP";
    if (has(d, n, 0, "BM", 2) && n >= 18) {
        uint32_t dib = d[14] | d[15] << 8 | d[16] << 16 | (uint32_t)d[17] << 24;
        if (dib == 12 || dib == 40 || dib == 52 || dib == 56 || dib == 64 ||
            dib == 108 || dib == 124)
            return "BMP";
    }
    if (n >= 3 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7' &&
        (d[2] == ' ' || d[2] == '\n' || d[2] == '\r' || d[2] == '\t'))
        return "NetPBM (PBM/PGM/PPM)";
    return NULL;
}

static int refuse_unknown(const image_src *src) {
    const uint8_t *d = src->data;
    size_t n = src->size < 24 ? src->size : 24;
    const char *fmt = other_format(d, src->size);
    if (fmt)
        return image_fail(src, "not a JPEG or PNG file: it is a %s image (salpipe reads "
                          "JPEG and PNG; convert it, e.g. with Pillow, first)", fmt);
    int text = 1;
    for (size_t i = 0; i < n; i++)
        if (!((d[i] >= 0x20 && d[i] < 0x7f) || d[i] == '\n' || d[i] == '\r' ||
              d[i] == '\t'))
            text = 0;
    if (text) {
        char shown[32];
        size_t k = 0;
        for (size_t i = 0; i < n && k < sizeof shown - 1; i++)
            shown[k++] =
                (d[i] == '\n' || d[i] == '\r' || d[i] == '\t') ? ' ' : (char)d[i];
        shown[k] = 0;
        return image_fail(src, "not a JPEG or PNG file: it looks like text (\"%s%s\")",
                          shown, src->size > n ? "..." : "");
    }
    char hex[64];
    size_t k = 0;
    for (size_t i = 0; i < n && i < 8; i++)
        k += (size_t)snprintf(hex + k, sizeof hex - k, "%s%02x", i ? " " : "", d[i]);
    return image_fail(src, "not a JPEG or PNG file: unknown format (first bytes %s)",
                      hex);
}

/* Pillow's L = (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16 (ITU-R 601-2).
 * The weights sum to 65536, so gray -> RGB -> L is the identity, and converting
 * every source through RGB equals Pillow's direct convert('L') from any mode. */
static void rgb_to_l(uint8_t *out, const uint8_t *in, size_t npix) {
    for (size_t i = 0; i < npix; i++, in += 3)
        out[i] =
            (uint8_t)((in[0] * 19595u + in[1] * 38470u + in[2] * 7471u + 0x8000u) >> 16);
}

static int convert_channels(sal_image *img, int32_t channels, const image_src *src) {
    if (img->channels == channels) return 0;
    size_t npix = (size_t)img->width * (size_t)img->height;
    uint8_t *p = malloc(npix * (size_t)channels);
    if (!p) return image_fail(src, "out of memory converting to %d channels", channels);
    if (channels == 3) {
        for (size_t i = 0; i < npix; i++)
            p[3 * i] = p[3 * i + 1] = p[3 * i + 2] = img->pixels[i];
    } else {
        rgb_to_l(p, img->pixels, npix);
    }
    free(img->pixels);
    img->pixels = p;
    img->channels = channels;
    return 0;
}

int sal_image_load(sal_image *out, const char *path, int32_t channels,
                   int64_t max_pixels, char *err, size_t errlen) {
    image_src src = {path ? path : "(null)", NULL, 0,
                     max_pixels > 0 ? max_pixels : SAL_IMAGE_MAX_PIXELS, err, errlen};
    if (!out) return image_fail(&src, "sal_image_load: no output image");
    memset(out, 0, sizeof *out);
    if (!path) return image_fail(&src, "sal_image_load: no path");
    if (channels != 1 && channels != 3)
        return image_fail(&src, "sal_image_load: channels must be 1 or 3, not %d",
                          (int)channels);
    uint8_t *data;
    size_t size;
    if (read_whole_file(&data, &size, &src)) return -1;
    src.data = data;
    src.size = size;

    int rc;
    if (has(data, size, 0, "\xff\xd8\xff", 3))
        rc = image_decode_jpeg(out, &src);
    else if (has(data, size, 0, "\x89PNG\r\n\x1a\n", 8))
        rc = image_decode_png(out, &src);
    else if (size < 8 && (has(data, size, 0, "\x89PNG", size < 4 ? size : 4) ||
                          has(data, size, 0, "\xff\xd8", size < 2 ? size : 2)))
        rc = image_fail(&src, "truncated file: only %zu bytes, not even a complete "
                        "JPEG or PNG signature", size);
    else
        rc = refuse_unknown(&src);
    free(data);
    if (rc == 0) rc = convert_channels(out, channels, &src);
    if (rc) sal_image_free(out);
    return rc;
}
