/*
 * npz: the two-pass .npz reader.
 *
 * A regular file is indexed from its central directory (npz_cd_*, a
 * small bounds-checked parse of fixed records), the only place a zip
 * written to a pipe records its sizes: every member is vetted from it
 * (name, method, encryption, size caps, the ratio that gives a zip bomb
 * away, overlapping members, the trick behind the non-recursive bombs)
 * before a byte of data is read.  Then each member's local header is held
 * against its directory entry and the first bytes of its data, the .npy
 * header, are inflated (npz_index_file).  The second pass over a regular
 * file reads members by offset (npz_cursor, isa-l's inflate).
 *
 * libarchive's seekable zip reader could read the members, but per member
 * it inflates a 256 KiB block and converts a DOS time (a stat of
 * /etc/localtime), which for tens of thousands of small members costs more
 * than converting them; so the local headers are read here, refusing what
 * libarchive refuses.  For anything that cannot seek (a FIFO, a terminal)
 * libarchive's streaming reader is used, and sizes are checked while
 * reading instead; npz_reader_* reads through libarchive too.
 *
 * Every size that comes from the archive is capped (npz_limits) before it
 * is used, and the second pass enforces the caps again on what the data
 * actually is: a member whose size fields lie is read only up to the byte
 * count its .npy header promised, plus one probe block that proves the lie.
 */
#include <sys/stat.h>
#include <sys/uio.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <locale.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npz.h"

#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <zlib.h>

#define NPZ_BLOCK		(1 << 20)	/* libarchive read size */
#define NPZ_FIRST_READ		4096		/* covers numpy's headers */
#define NPZ_RATIO_MIN_SIZE	(1ULL << 20)	/* ratio cap applies above */
#define NPZ_EOCD_LEN		22
#define NPZ_EOCD_SCAN		(65535 + NPZ_EOCD_LEN)
#define NPZ_LOC64_LEN		20
#define NPZ_EOCD64_LEN		56
#define NPZ_CDH_LEN		46		/* central directory header */
#define NPZ_LFH_LEN		30		/* local file header */
#define NPZ_CD_EXTRA_MAX	2048		/* extra + comment per entry */
#define NPZ_DISP_MAX		160		/* member names in messages */
#define NPZ_FLAG_ENCRYPTED	0x0001
#define NPZ_FLAG_STRONG		0x0040

/* One central directory record; name points into the directory buffer. */
struct npz_cd {
	const char	*name;
	size_t		 namelen;
	uint16_t	 flags;
	uint16_t	 method;
	uint64_t	 comp;
	uint64_t	 size;
	uint64_t	 offset;
	uint32_t	 crc;
	uint32_t	 attr;		/* external attributes */
	uint8_t		 system;	/* "made by" host: 0 MS-DOS, 3 Unix */
	size_t		 order;		/* position in the directory */
};

/* What we know about a member before reading its data. */
struct npz_meta {
	const char	*name;
	size_t		 namelen;
	int		 method;	/* zip method number, -1 unknown */
	const char	*method_name;	/* for messages */
	int		 encrypted;
	int		 comp_known;
	uint64_t	 comp;
	int		 size_known;
	uint64_t	 size;
};

/* The index as allocated: the public part first, then a key lookup. */
struct npz_index_priv {
	struct npz_index pub;
	size_t		 cap;
	struct npz_entry **by_key;	/* entries sorted by key */
	char		*names;		/* every name and key, or NULL if
					   each entry owns its own */
	size_t		 names_used;
};

struct npz_reader {
	struct archive	*a;
	int		 fd;
	const struct npz_index *ix;
	struct npz_limits lim;
	size_t		 pos;		/* index position of the next member */
	long		 cur;		/* current member, -1 before the first */
	int		 cur_read;	/* its data was handed out */
	int		 at_end;	/* libarchive said EOF */
	uint64_t	 total;		/* data bytes handed out so far */
	uint8_t		*hbuf;		/* header bytes of the current member */
};

static const char *
npz_method_name(int m)
{
	switch (m) {
	case 0:		return "stored";
	case 8:		return "deflate";
	case 9:		return "deflate64";
	case 12:	return "bzip2";
	case 14:	return "lzma";
	case 93:	return "zstd";
	case 95:	return "xz";
	case 98:	return "ppmd";
	case 99:	return "WinZip AES";
	}
	return "unknown";
}

/*
 * A member name made safe to print: non-printable and non-ASCII bytes
 * become \xNN, and long names are cut.  Names in error messages are what
 * users search for, so printable names are left exactly as they are.
 */
static const char *
npz_disp(const char *name, size_t len, char *buf, size_t bufsz)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;
	unsigned char c;

	for (i = 0; i < len && o + 8 < bufsz; i++) {
		c = (unsigned char)name[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[o++] = (char)c;
		else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	if (i < len) {
		buf[o++] = '.';
		buf[o++] = '.';
		buf[o++] = '.';
	}
	buf[o] = '\0';
	return buf;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static int
npz_utf8_ok(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;
	uint32_t cp;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			n = 1;
			cp = s[i] & 0x1f;
		} else if ((s[i] & 0xf0) == 0xe0) {
			n = 2;
			cp = s[i] & 0x0f;
		} else if ((s[i] & 0xf8) == 0xf0) {
			n = 3;
			cp = s[i] & 0x07;
		} else
			return 0;
		if (len - i - 1 < n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

void
npz_limits_default(struct npz_limits *l)
{
	l->max_members = NPZ_DEF_MAX_MEMBERS;
	l->max_tensor_bytes = NPZ_DEF_MAX_TENSOR;
	l->max_total_bytes = NPZ_DEF_MAX_TOTAL;
	l->max_ratio = NPZ_DEF_MAX_RATIO;
}

/* ---- opening ----------------------------------------------------------- */

/*
 * libarchive converts UTF-8 member names to the calling thread's locale,
 * which fails for any non-ASCII key in the C locale that daemons and
 * scripts run in.  We switch only this thread, only around header reads,
 * to a UTF-8 LC_CTYPE; the process locale is never touched.  The locale
 * object is made once and never changes.
 */
static pthread_once_t	 npz_loc_once = PTHREAD_ONCE_INIT;
static locale_t		 npz_loc;

static void
npz_loc_init(void)
{
	npz_loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	if (npz_loc == (locale_t)0)
		npz_loc = newlocale(LC_CTYPE_MASK, "en_US.UTF-8", (locale_t)0);
}

static int
npz_next_header(struct archive *a, struct archive_entry **ae)
{
	locale_t old = (locale_t)0;
	int r;

	pthread_once(&npz_loc_once, npz_loc_init);
	if (npz_loc != (locale_t)0)
		old = uselocale(npz_loc);
	r = archive_read_next_header(a, ae);
	if (npz_loc != (locale_t)0)
		uselocale(old);
	return r;
}

static int
npz_open_fd(const char *path, int *fdp, struct stat *st, struct wb_err *err)
{
	int fd;

	*fdp = -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT || errno == ENOTDIR)
			return wb_err_set(err, WB_E_NOTFOUND,
			    "'%s': no such file", path);
		return wb_err_set(err, WB_E_IO, "'%s': %s", path,
		    strerror(errno));
	}
	if (fstat(fd, st) == -1) {
		wb_err_set(err, WB_E_IO, "'%s': %s", path, strerror(errno));
		close(fd);
		return WB_E_IO;
	}
	if (S_ISDIR(st->st_mode)) {
		close(fd);
		return wb_err_set(err, WB_E_ARCHIVE,
		    "'%s' is a directory, not an .npz archive", path);
	}
	if (S_ISREG(st->st_mode) && st->st_size == 0) {
		close(fd);
		return wb_err_set(err, WB_E_ARCHIVE,
		    "'%s' is empty: not a zip archive (an .npz is a zip of "
		    ".npy files)", path);
	}
	*fdp = fd;
	return 0;
}

static int
npz_archive_open(int fd, int seekable, struct archive **out,
    struct wb_err *err)
{
	struct archive *a;
	int r;

	*out = NULL;
	if ((a = archive_read_new()) == NULL)
		return wb_err_set(err, WB_E_NOMEM, "archive_read_new failed");
	if (seekable)
		r = archive_read_support_format_zip_seekable(a);
	else
		r = archive_read_support_format_zip_streamable(a);
	if (r != ARCHIVE_OK) {
		wb_err_set(err, WB_E_INTERNAL, "libarchive: %s",
		    archive_error_string(a));
		archive_read_free(a);
		return WB_E_INTERNAL;
	}
	if (archive_read_open_fd(a, fd, NPZ_BLOCK) != ARCHIVE_OK) {
		wb_err_set(err, WB_E_ARCHIVE,
		    "not a zip archive (an .npz is a zip of .npy files): %s",
		    archive_error_string(a));
		archive_read_free(a);
		return WB_E_ARCHIVE;
	}
	*out = a;
	return 0;
}

/* ---- the central directory --------------------------------------------- */

static uint16_t
npz_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
npz_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
npz_le64(const uint8_t *p)
{
	return (uint64_t)npz_le32(p) | (uint64_t)npz_le32(p + 4) << 32;
}

static int
npz_pread(int fd, void *buf, size_t len, uint64_t off, struct wb_err *err)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, (uint8_t *)buf + got, len - got,
		    (off_t)(off + got));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return wb_err_set(err, WB_E_IO, "read: %s",
			    strerror(errno));
		if (n == 0)
			return wb_err_set(err, WB_E_ARCHIVE,
			    "truncated zip archive: ends before byte %" PRIu64,
			    off + len);
		got += (size_t)n;
	}
	return 0;
}

/*
 * An extra field read the way libarchive's zip reader (the one a pipe
 * goes through) reads it, so that a file and a pipe accept the same
 * archives: what it refuses is refused here.  Zip64 records replace the
 * 32-bit values that are 0xffffffff; the return value says which were
 * replaced (NPZ_X64_*), or is -1 for a malformed field.  If name is not
 * NULL, Info-ZIP Unicode path records whose CRC matches the name rename
 * it, as they do in libarchive: *name and *namelen follow them.
 */
#define NPZ_X64_SIZE	1
#define NPZ_X64_COMP	2
#define NPZ_X64_OFF	4

static int
npz_extra(const uint8_t *x, size_t xlen, uint64_t *size, uint64_t *comp,
    uint64_t *off, const uint8_t **name, size_t *namelen)
{
	const uint8_t *r;
	size_t i = 0, ds, q;
	int got = 0;

	if (xlen < 4) {
		/* Some writers pad with up to three zero bytes. */
		for (i = 0; i < xlen; i++)
			if (x[i] != 0)
				return -1;
		return 0;
	}
	while (i + 4 <= xlen) {
		ds = npz_le16(x + i + 2);
		r = x + i + 4;
		if (ds > xlen - i - 4)
			return -1;
		switch (npz_le16(x + i)) {
		case 0x0001:	/* zip64: only the fields that overflowed */
			q = 0;
			if (*size == 0xffffffff) {
				if (ds - q < 8 || npz_le64(r + q) > INT64_MAX)
					return -1;
				*size = npz_le64(r + q);
				q += 8;
				got |= NPZ_X64_SIZE;
			}
			if (*comp == 0xffffffff) {
				if (ds - q < 8 || npz_le64(r + q) > INT64_MAX)
					return -1;
				*comp = npz_le64(r + q);
				q += 8;
				got |= NPZ_X64_COMP;
			}
			if (*off == 0xffffffff) {
				if (ds - q < 8 || npz_le64(r + q) > INT64_MAX)
					return -1;
				*off = npz_le64(r + q);
				got |= NPZ_X64_OFF;
			}
			break;
		case 0x5455:	/* extended timestamps */
			if (ds == 0)
				return -1;
			break;
		case 0x7075:	/* Info-ZIP Unicode path */
			if (name != NULL && ds >= 5 && npz_le32(r + 1) ==
			    crc32_gzip_refl(0, *name, *namelen)) {
				*name = r + 5;
				*namelen = ds - 5;
			}
			break;
		case 0x9901:	/* WinZip AES */
			if (ds < 6)
				return -1;
			break;
		}
		i += 4 + ds;
	}
	return got;
}

static int
npz_cd_cmp(const void *pa, const void *pb)
{
	const struct npz_cd *a = pa, *b = pb;

	if (a->offset != b->offset)
		return a->offset < b->offset ? -1 : 1;
	return a->order < b->order ? -1 : a->order > b->order;
}

/* Member i of the sorted directory runs into what follows it. */
static int
npz_overlap_err(const char *path, const struct npz_cd *cd, size_t count,
    size_t i, struct wb_err *err)
{
	char d1[NPZ_DISP_MAX], d2[NPZ_DISP_MAX];

	return wb_err_set(err, WB_E_ARCHIVE, "'%s': member '%s' overlaps "
	    "%s%s%s (overlapping members are a zip bomb technique)", path,
	    npz_disp(cd[i].name, cd[i].namelen, d1, sizeof(d1)),
	    i + 1 < count ? "member '" : "the central directory",
	    i + 1 < count ? npz_disp(cd[i + 1].name, cd[i + 1].namelen, d2,
	    sizeof(d2)) : "", i + 1 < count ? "'" : "");
}

/*
 * Find the end-of-central-directory record (and its zip64 twin), read
 * the whole directory into *bufp and parse it into *cdp, sorted by local
 * header offset, with *cd_offp where the directory starts.  The member
 * count is capped before anything is allocated for it.
 */
static int
npz_cd_read(int fd, uint64_t fsize, const char *path,
    const struct npz_limits *lim, uint8_t **bufp, struct npz_cd **cdp,
    size_t *np, uint64_t *cd_offp, struct wb_err *err)
{
	uint8_t head[4], loc[NPZ_LOC64_LEN], e64[NPZ_EOCD64_LEN];
	uint8_t *tail = NULL, *cdbuf = NULL, *p;
	struct npz_cd *cd = NULL;
	uint64_t eocd, end, cd_off, cd_size, count, loc_off, e64_off, lim_off;
	size_t tlen, i, pos, nl, xl, cl;
	int rc = 0, found = 0, want;

	*bufp = NULL;
	*cdp = NULL;
	*np = 0;

	if (fsize < 4 || (rc = npz_pread(fd, head, 4, 0, err)) != 0 ||
	    (memcmp(head, "PK\3\4", 4) != 0 && memcmp(head, "PK\5\6", 4) != 0)) {
		rc = wb_err_set(err, WB_E_ARCHIVE, "'%s': not a zip archive "
		    "(an .npz is a zip of .npy files)", path);
		goto out;
	}
	tlen = fsize < NPZ_EOCD_SCAN ? (size_t)fsize : NPZ_EOCD_SCAN;
	if ((tail = malloc(tlen)) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = npz_pread(fd, tail, tlen, fsize - tlen, err)) != 0)
		goto out;
	/* The last signature whose comment fits in the file. */
	for (i = tlen >= NPZ_EOCD_LEN ? tlen - NPZ_EOCD_LEN + 1 : 0; i-- > 0;) {
		if (memcmp(tail + i, "PK\5\6", 4) == 0 &&
		    i + NPZ_EOCD_LEN + npz_le16(tail + i + 20) <= tlen) {
			found = 1;
			break;
		}
	}
	if (!found) {
		rc = wb_err_set(err, WB_E_ARCHIVE, "'%s': truncated or damaged "
		    "zip archive: no end-of-central-directory record (was the "
		    "file cut short?)", path);
		goto out;
	}
	eocd = fsize - tlen + i;
	p = tail + i;
	if (npz_le16(p + 4) != 0 || npz_le16(p + 6) != 0) {
		rc = wb_err_set(err, WB_E_ARCHIVE,
		    "'%s': multi-part zip archives are not supported", path);
		goto out;
	}
	count = npz_le16(p + 10);
	cd_size = npz_le32(p + 12);
	cd_off = npz_le32(p + 16);
	end = eocd;
	if (count == 0xffff || cd_size == 0xffffffff || cd_off == 0xffffffff) {
		if (eocd < NPZ_LOC64_LEN + NPZ_EOCD64_LEN ||
		    (rc = npz_pread(fd, loc, sizeof(loc), eocd - NPZ_LOC64_LEN,
		    err)) != 0 || memcmp(loc, "PK\6\7", 4) != 0) {
			rc = wb_err_set(err, WB_E_ARCHIVE, "'%s': damaged zip64 "
			    "archive: no zip64 end-of-central-directory "
			    "locator", path);
			goto out;
		}
		loc_off = eocd - NPZ_LOC64_LEN;
		e64_off = npz_le64(loc + 8);
		if (e64_off > loc_off || loc_off - e64_off < NPZ_EOCD64_LEN ||
		    (rc = npz_pread(fd, e64, sizeof(e64), e64_off, err)) != 0 ||
		    memcmp(e64, "PK\6\6", 4) != 0) {
			rc = wb_err_set(err, WB_E_ARCHIVE, "'%s': damaged zip64 "
			    "archive: bad zip64 end-of-central-directory "
			    "record", path);
			goto out;
		}
		count = npz_le64(e64 + 32);
		cd_size = npz_le64(e64 + 40);
		cd_off = npz_le64(e64 + 48);
		end = e64_off;
	}
	if (count > lim->max_members) {
		rc = wb_err_set(err, WB_E_LIMIT, "'%s': archive has %" PRIu64
		    " members, more than the %" PRIu64 " allowed", path, count,
		    lim->max_members);
		goto out;
	}
	if (cd_off > end || cd_size > end - cd_off ||
	    cd_size < count * NPZ_CDH_LEN) {
		rc = wb_err_set(err, WB_E_ARCHIVE, "'%s': damaged zip archive: "
		    "central directory (%" PRIu64 " bytes at %" PRIu64 ") does "
		    "not fit the file", path, cd_size, cd_off);
		goto out;
	}
	if (cd_size > count * (NPZ_CDH_LEN + NPZ_NAME_MAX + NPZ_CD_EXTRA_MAX)) {
		rc = wb_err_set(err, WB_E_ARCHIVE, "'%s': central directory is "
		    "%" PRIu64 " bytes, too large for %" PRIu64 " members",
		    path, cd_size, count);
		goto out;
	}
	if ((cdbuf = malloc(cd_size > 0 ? (size_t)cd_size : 1)) == NULL ||
	    (cd = calloc(count > 0 ? (size_t)count : 1, sizeof(*cd))) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = npz_pread(fd, cdbuf, (size_t)cd_size, cd_off, err)) != 0)
		goto out;

	for (i = 0, pos = 0; i < count; i++) {
		struct npz_cd *c = &cd[i];

		if (cd_size - pos < NPZ_CDH_LEN ||
		    memcmp(cdbuf + pos, "PK\1\2", 4) != 0)
			goto damaged;
		p = cdbuf + pos;
		nl = npz_le16(p + 28);
		xl = npz_le16(p + 30);
		cl = npz_le16(p + 32);
		if (cd_size - pos - NPZ_CDH_LEN < nl + xl + cl)
			goto damaged;
		c->name = (const char *)p + NPZ_CDH_LEN;
		c->namelen = nl;
		c->flags = npz_le16(p + 8);
		c->method = npz_le16(p + 10);
		c->crc = npz_le32(p + 16);
		c->comp = npz_le32(p + 20);
		c->size = npz_le32(p + 24);
		c->offset = npz_le32(p + 42);
		c->attr = npz_le32(p + 38);
		c->system = p[5];
		c->order = i;
		/* A field at 0xffffffff must have its zip64 value. */
		want = (c->size == 0xffffffff ? NPZ_X64_SIZE : 0) |
		    (c->comp == 0xffffffff ? NPZ_X64_COMP : 0) |
		    (c->offset == 0xffffffff ? NPZ_X64_OFF : 0);
		if (npz_extra(p + NPZ_CDH_LEN + nl, xl, &c->size, &c->comp,
		    &c->offset, NULL, NULL) != want)
			goto damaged;
		pos += NPZ_CDH_LEN + nl + xl + cl;
	}

	/*
	 * In offset order, each member's local header, name and compressed
	 * data must end before the next member starts, and the last one
	 * before the central directory.
	 */
	qsort(cd, (size_t)count, sizeof(*cd), npz_cd_cmp);
	/*
	 * numpy writes members from offset 0 up to the directory.  Bytes the
	 * directory does not account for would be read by a streaming reader
	 * (a pipe) as members the seekable one never sees: refuse them, so an
	 * archive means the same whichever way it is read.
	 */
	if ((count == 0 && cd_off > 0) || (count > 0 && cd[0].offset != 0)) {
		rc = wb_err_set(err, WB_E_ARCHIVE, "'%s': damaged zip archive: "
		    "%" PRIu64 " bytes before %s that the central directory "
		    "does not list", path, count ? cd[0].offset : cd_off,
		    count ? "the first member" : "the directory");
		goto out;
	}
	for (i = 0; i < count; i++) {
		lim_off = i + 1 < count ? cd[i + 1].offset : cd_off;
		if (cd[i].offset > lim_off ||
		    lim_off - cd[i].offset < NPZ_LFH_LEN + cd[i].namelen ||
		    lim_off - cd[i].offset - NPZ_LFH_LEN - cd[i].namelen <
		    cd[i].comp) {
			rc = npz_overlap_err(path, cd, (size_t)count, i, err);
			goto out;
		}
	}
	*bufp = cdbuf;
	*cdp = cd;
	*np = (size_t)count;
	*cd_offp = cd_off;
	cdbuf = NULL;
	cd = NULL;
	goto out;
damaged:
	rc = wb_err_set(err, WB_E_ARCHIVE, "'%s': damaged zip archive: bad "
	    "central directory entry %zu", path, i);
out:
	free(tail);
	free(cdbuf);
	free(cd);
	return rc;
}

/* ---- member checks ----------------------------------------------------- */

/*
 * Everything we can refuse from a member's name and zip fields alone,
 * before any of its data is read.
 */
static int
npz_check_member(const struct npz_meta *m, const struct npz_limits *lim,
    struct wb_err *err)
{
	char d[NPZ_DISP_MAX];
	const char *dn = npz_disp(m->name, m->namelen, d, sizeof(d));
	uint64_t cap;

	if (m->namelen > NPZ_NAME_MAX)
		return wb_err_set(err, WB_E_ARCHIVE, "member '%s': name is %zu "
		    "bytes, more than the %d allowed", dn, m->namelen,
		    NPZ_NAME_MAX);
	if (memchr(m->name, '\0', m->namelen) != NULL)
		return wb_err_set(err, WB_E_ARCHIVE,
		    "member '%s': name contains a NUL byte", dn);
	if (!npz_utf8_ok((const unsigned char *)m->name, m->namelen))
		return wb_err_set(err, WB_E_ARCHIVE,
		    "member '%s': name is not valid UTF-8", dn);
	if (m->namelen > 0 && m->name[0] == '/')
		return wb_err_set(err, WB_E_ARCHIVE,
		    "member '%s': absolute path refused", dn);
	if (memmem(m->name, m->namelen, "..", 2) != NULL)
		return wb_err_set(err, WB_E_ARCHIVE,
		    "member '%s': name contains '..'", dn);
	if (m->namelen <= 4 ||
	    memcmp(m->name + m->namelen - 4, ".npy", 4) != 0)
		return wb_err_set(err, WB_E_ARCHIVE, "member '%s' is not a "
		    ".npy file (an .npz holds only <key>.npy members)", dn);
	if (m->encrypted)
		return wb_err_set(err, WB_E_ARCHIVE, "member '%s' is encrypted;"
		    " encrypted archives are not supported", dn);
	if (m->method != NPZ_STORED && m->method != NPZ_DEFLATED)
		return wb_err_set(err, WB_E_ARCHIVE, "member '%s' uses "
		    "compression method %s; only stored and deflate are "
		    "supported", dn, m->method_name);
	cap = lim->max_tensor_bytes + NPY_PREAMBLE_MAX + NPY_HEADER_MAX;
	if (cap < lim->max_tensor_bytes)
		cap = UINT64_MAX;
	if (m->size_known && m->size > cap)
		return wb_err_set(err, WB_E_LIMIT, "member '%s' is %" PRIu64
		    " bytes, more than the tensor cap of %" PRIu64 " bytes",
		    dn, m->size, lim->max_tensor_bytes);
	if (m->size_known && m->comp_known && m->size > NPZ_RATIO_MIN_SIZE &&
	    (m->comp == 0 || m->size / m->comp > lim->max_ratio))
		return wb_err_set(err, WB_E_LIMIT, "member '%s' expands from %"
		    PRIu64 " to %" PRIu64 " bytes, more than %" PRIu64 " times "
		    "(a zip bomb?)", dn, m->comp, m->size, lim->max_ratio);
	return 0;
}

/* The method, as far as the streaming reader lets us know it. */
static void
npz_meta_from_archive(struct archive *a, struct archive_entry *ae,
    struct npz_meta *m)
{
	const char *fmt = archive_format_name(a);
	const char *pn = archive_entry_pathname(ae);

	memset(m, 0, sizeof(*m));
	m->name = pn != NULL ? pn : "";
	m->namelen = strlen(m->name);
	/* libarchive reports the method only in the per-entry format name,
	 * "ZIP 2.0 (deflation)"; anything else is refused. */
	if (fmt != NULL && strstr(fmt, "(uncompressed)") != NULL)
		m->method = NPZ_STORED;
	else if (fmt != NULL && strstr(fmt, "(deflation)") != NULL)
		m->method = NPZ_DEFLATED;
	else
		m->method = -1;
	m->method_name = fmt != NULL ? fmt : "unknown";
	m->encrypted = archive_entry_is_encrypted(ae) != 0;
	m->size_known = archive_entry_size_is_set(ae) != 0;
	m->size = m->size_known ? (uint64_t)archive_entry_size(ae) : 0;
}

/* Read up to len bytes of the current member; *got < len means its end. */
static int
npz_read_full(struct archive *a, void *buf, size_t len, size_t *got,
    const char *key, struct wb_err *err)
{
	la_ssize_t n;
	size_t chunk;

	*got = 0;
	while (*got < len) {
		chunk = len - *got < (1U << 30) ? len - *got : (1U << 30);
		n = archive_read_data(a, (uint8_t *)buf + *got, chunk);
		if (n < 0)
			return wb_err_set(err, WB_E_ARCHIVE, "tensor '%s': "
			    "reading the member failed: %s", key,
			    archive_error_string(a));
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return 0;
}

/* ---- the index --------------------------------------------------------- */

/*
 * Add an entry for a vetted member.  The seekable pass sizes the entry
 * array and the name block from the directory before it adds anything;
 * the streaming pass grows the array and copies each name.
 */
static int
npz_entry_add(struct npz_index_priv *p, const struct npz_meta *m,
    const struct npz_limits *lim, struct wb_err *err)
{
	struct npz_entry *e, *ne;
	size_t ncap;

	if (p->pub.n >= lim->max_members)
		return wb_err_set(err, WB_E_LIMIT, "archive has more than %"
		    PRIu64 " members", lim->max_members);
	if (p->pub.n == p->cap) {
		ncap = p->cap ? p->cap * 2 : 16;
		if (ncap > SIZE_MAX / sizeof(*ne) ||
		    (ne = realloc(p->pub.e, ncap * sizeof(*ne))) == NULL)
			return wb_err_set(err, WB_E_NOMEM, "out of memory");
		p->pub.e = ne;
		p->cap = ncap;
	}
	e = &p->pub.e[p->pub.n];
	memset(e, 0, sizeof(*e));
	if (p->names != NULL) {
		/* "name.npy\0name\0", in the block sized for all of them. */
		e->name = p->names + p->names_used;
		memcpy(e->name, m->name, m->namelen);
		e->name[m->namelen] = '\0';
		e->key = e->name + m->namelen + 1;
		memcpy(e->key, m->name, m->namelen - 4);
		e->key[m->namelen - 4] = '\0';
		p->names_used += 2 * m->namelen - 2;
	} else if ((e->name = strndup(m->name, m->namelen)) == NULL ||
	    (e->key = strndup(m->name, m->namelen - 4)) == NULL) {
		free(e->name);
		return wb_err_set(err, WB_E_NOMEM, "out of memory");
	}
	e->method = m->method == NPZ_DEFLATED ? NPZ_DEFLATED : NPZ_STORED;
	e->comp_size = m->comp_known ? m->comp : 0;
	e->size = m->size_known ? m->size : 0;
	e->hdr.ndim = -1;
	p->pub.n++;
	return 0;
}

static int
npz_key_cmp(const void *a, const void *b)
{
	const struct npz_entry *const *x = a, *const *y = b;

	return strcmp((*x)->key, (*y)->key);
}

/*
 * Sort the entries by key, through pointers so that qsort needs no
 * context, for npz_index_find(); equal neighbours are duplicate members.
 */
static int
npz_keys_sort(struct npz_index_priv *p, struct wb_err *err)
{
	char d[NPZ_DISP_MAX];
	size_t i, n = p->pub.n;

	if ((p->by_key = malloc((n > 0 ? n : 1) * sizeof(*p->by_key))) ==
	    NULL)
		return wb_err_set(err, WB_E_NOMEM, "out of memory");
	for (i = 0; i < n; i++)
		p->by_key[i] = &p->pub.e[i];
	qsort(p->by_key, n, sizeof(*p->by_key), npz_key_cmp);
	for (i = 1; i < n; i++)
		if (strcmp(p->by_key[i - 1]->key, p->by_key[i]->key) == 0)
			return wb_err_set(err, WB_E_ARCHIVE, "duplicate member "
			    "'%s'", npz_disp(p->by_key[i]->name,
			    strlen(p->by_key[i]->name), d, sizeof(d)));
	return 0;
}

/*
 * Where a member's first bytes come from: libarchive for a pipe, our own
 * reader for a regular file.  fetch() makes the first `want` bytes of the
 * member's data available at *buf (fewer only if the member is shorter);
 * a later call may ask for more and moves *buf.
 */
struct npz_src {
	int		(*fetch)(struct npz_src *s, size_t want,
			    const uint8_t **buf, size_t *have,
			    struct wb_err *err);
	size_t		 first;		/* bytes to ask for first */
	const struct npz_entry *e;
	uint8_t		*buf;
	size_t		 cap, have;
};

/* The streaming reader's source: whatever libarchive inflates. */
struct npz_arc_src {
	struct npz_src	 s;
	struct archive	*a;
};

static int
npz_arc_fetch(struct npz_src *s, size_t want, const uint8_t **buf,
    size_t *have, struct wb_err *err)
{
	struct npz_arc_src *as = (struct npz_arc_src *)s;
	size_t got, ncap;
	uint8_t *nb;
	int rc;

	if (want > s->cap) {
		ncap = want < NPZ_FIRST_READ ? NPZ_FIRST_READ : want;
		if ((nb = realloc(s->buf, ncap)) == NULL)
			return wb_err_set(err, WB_E_NOMEM, "out of memory");
		s->buf = nb;
		s->cap = ncap;
	}
	if (want > s->have) {
		if ((rc = npz_read_full(as->a, s->buf + s->have,
		    want - s->have, &got, s->e->key, err)) != 0)
			return rc;
		s->have += got;
	}
	*buf = s->buf;
	*have = s->have < want ? s->have : want;
	return 0;
}

/*
 * Parse the .npy header at the start of member e into e->hdr, then hold
 * its sizes against the zip's and against the caps (the running total in
 * *total, unless total is NULL).  Only the first few kilobytes of the
 * member are read (inflated), however large it is.
 */
static int
npz_member_header(struct npz_src *src, struct npz_entry *e, int size_known,
    const struct npz_limits *lim, uint64_t *total, struct wb_err *err)
{
	const uint8_t *buf;
	size_t have, want, need;
	uint64_t mlen, holds;
	int rc, eof;

	src->e = e;
	src->have = 0;
	want = src->first;
	if (size_known && e->size < want)
		want = (size_t)e->size;
	for (;;) {
		if ((rc = src->fetch(src, want, &buf, &have, err)) != 0)
			return rc;
		eof = have < want;
		mlen = eof ? have : UINT64_MAX;
		if ((rc = npy_parse(buf, have, mlen, e->key, &e->hdr, &need,
		    err)) != 0)
			return rc;
		if (e->hdr.ndim >= 0)
			break;
		if (eof || need <= have ||
		    need > NPY_PREAMBLE_MAX + NPY_HEADER_MAX)
			return wb_err_set(err, WB_E_INTERNAL, "tensor '%s': "
			    "npy_parse asked for %zu bytes with %zu at hand",
			    e->key, need, have);
		want = need;
	}
	if (e->hdr.nbytes > lim->max_tensor_bytes)
		return wb_err_set(err, WB_E_LIMIT, "tensor '%s': %" PRIu64
		    " bytes of data, more than the %" PRIu64 "-byte tensor cap",
		    e->key, e->hdr.nbytes, lim->max_tensor_bytes);
	if (size_known && e->size != e->hdr.data_offset + e->hdr.nbytes) {
		holds = e->size > e->hdr.data_offset ?
		    e->size - e->hdr.data_offset : 0;
		return wb_err_set(err, WB_E_NPY, "tensor '%s': header says %"
		    PRIu64 " bytes of data, member holds %" PRIu64, e->key,
		    e->hdr.nbytes, holds);
	}
	if (total == NULL)
		return 0;	/* the caller keeps the total */
	if (e->hdr.nbytes > lim->max_total_bytes ||
	    *total > lim->max_total_bytes - e->hdr.nbytes)
		return wb_err_set(err, WB_E_LIMIT, "tensor '%s': the archive "
		    "holds more than the %" PRIu64 "-byte cap on tensor data",
		    e->key, lim->max_total_bytes);
	*total += e->hdr.nbytes;
	return 0;
}

/* ---- the index of a regular file --------------------------------------- */

/*
 * A regular file is indexed without libarchive: the central directory
 * gives every member's place, and each member's local header and first
 * bytes are read straight from the file.  Members lie in offset order,
 * so one read of NPZ_WIN bytes usually covers many small members; a large
 * member costs one short read for its header, never its data.
 *
 * What libarchive's seekable reader refused, this refuses too (the tests
 * and the pipe's reader hold us to it): a local header that names another
 * member or disagrees with the directory about method, encryption, sizes
 * or CRC, malformed extra fields, directories and links.  A member of at
 * most NPZ_FIRST_READ bytes is read whole (a deflate stream up to that
 * many bytes even if the zip says it is shorter) and its sizes and CRC
 * are checked here; of a larger one only the .npy header is inflated,
 * and the second pass, which reads every byte, checks the rest.
 */
#define NPZ_WIN		(256u << 10)	/* bytes per read of small members */
#define NPZ_PREFETCH_MAX 4096		/* members whose headers are prefetched */
#define NPZ_WIN_CHUNK	(16u << 10)	/* compressed bytes per inflate call */
#define NPZ_FILE_FIRST	256		/* numpy's headers are 128 bytes */

struct npz_win {
	int		 fd;
	uint64_t	 fsize;
	uint8_t		*buf;
	size_t		 cap, len;
	uint64_t	 off;		/* file offset of buf[0] */
};

/*
 * Point *p at bytes [off, off + len) of the file, which the caller knows
 * to be inside it.  A miss reads `ahead` bytes (at least len) from off.
 */
static int
npz_win_get(struct npz_win *w, uint64_t off, size_t len, size_t ahead,
    const uint8_t **p, struct wb_err *err)
{
	uint8_t *nb;
	size_t n;
	int rc;

	if (off >= w->off && off - w->off <= w->len &&
	    len <= w->len - (off - w->off)) {
		*p = w->buf + (off - w->off);
		return 0;
	}
	n = ahead > len ? ahead : len;
	if (n > w->fsize - off)
		n = (size_t)(w->fsize - off);
	if (n > w->cap) {
		if ((nb = realloc(w->buf, n)) == NULL)
			return wb_err_set(err, WB_E_NOMEM, "out of memory");
		w->buf = nb;
		w->cap = n;
	}
	w->len = 0;
	if ((rc = npz_pread(w->fd, w->buf, n, off, err)) != 0)
		return rc;
	w->off = off;
	w->len = n;
	*p = w->buf;
	return 0;
}

/*
 * A regular file's source: stored bytes, or zlib's inflate, which sets a
 * stream up in half the time isa-l takes (whose larger tables pay off
 * only over more than the few hundred bytes a header needs).
 */
struct npz_file_src {
	struct npz_src	 s;
	struct npz_win	*win;
	z_stream	 z;
	int		 z_live;
	uint64_t	 pos;		/* next compressed byte to read */
	uint64_t	 left;		/* compressed bytes not read yet */
	size_t		 ahead;		/* read size for a window miss */
	int		 ended;		/* the member's data is all in buf */
};

/* The member ended within what was read: check it whole, as zip does. */
static int
npz_file_ended(struct npz_file_src *fs, uint64_t used, struct wb_err *err)
{
	const struct npz_entry *e = fs->s.e;
	uint32_t crc;

	if (used != e->comp_size || fs->s.have != e->size)
		return wb_err_set(err, WB_E_ARCHIVE, "tensor '%s': reading the "
		    "member failed: its data is the wrong size (%zu bytes from "
		    "%" PRIu64 " compressed; the zip says %" PRIu64 " from %"
		    PRIu64 ")", e->key, fs->s.have, used, e->size,
		    e->comp_size);
	crc = crc32_gzip_refl(0, fs->s.buf, fs->s.have);
	if (crc != e->crc32)
		return wb_err_set(err, WB_E_ARCHIVE, "member '%s': CRC-32 is "
		    "%08x, the directory says %08x: the archive is damaged",
		    e->name, crc, e->crc32);
	return 0;
}

static int
npz_file_fetch(struct npz_src *s, size_t want, const uint8_t **buf,
    size_t *have, struct wb_err *err)
{
	struct npz_file_src *fs = (struct npz_file_src *)s;
	const struct npz_entry *e = s->e;
	z_stream *z = &fs->z;
	const uint8_t *in;
	size_t target, n;
	int r, rc;

	/* A small member is read whole, a little past its end if its
	 * stream runs on, and checked now, as libarchive's reader did. */
	target = want;
	if (e->size <= NPZ_FIRST_READ && target < NPZ_FIRST_READ)
		target = NPZ_FIRST_READ;
	if (target > s->cap)
		return wb_err_set(err, WB_E_INTERNAL, "tensor '%s': %zu header "
		    "bytes asked for", e->key, target);
	if (e->method == NPZ_STORED && !fs->ended) {
		n = e->size < target ? (size_t)e->size : target;
		if (n > s->have) {
			if ((rc = npz_win_get(fs->win, fs->pos + s->have,
			    n - s->have, s->have == 0 ? fs->ahead : n - s->have,
			    &in, err)) != 0)
				return rc;
			memcpy(s->buf + s->have, in, n - s->have);
			s->have = n;
		}
		if (n == e->size) {
			fs->ended = 1;
			if ((rc = npz_file_ended(fs, e->comp_size, err)) != 0)
				return rc;
		}
	}
	while (e->method == NPZ_DEFLATED && !fs->ended && s->have < target) {
		if (z->avail_in == 0 && fs->left > 0) {
			n = fs->left < NPZ_WIN_CHUNK ? (size_t)fs->left :
			    NPZ_WIN_CHUNK;
			if ((rc = npz_win_get(fs->win, fs->pos, n,
			    fs->ahead > n ? fs->ahead : n, &in, err)) != 0)
				return rc;
			fs->pos += n;
			fs->left -= n;
			z->next_in = (Bytef *)(uintptr_t)in;
			z->avail_in = (uInt)n;
		}
		z->next_out = s->buf + s->have;
		z->avail_out = (uInt)(target - s->have);
		r = inflate(z, Z_SYNC_FLUSH);
		s->have = target - z->avail_out;
		if (r == Z_STREAM_END) {
			fs->ended = 1;
			if ((rc = npz_file_ended(fs, e->comp_size - fs->left -
			    z->avail_in, err)) != 0)
				return rc;
			break;
		}
		if (r == Z_BUF_ERROR) {
			/* No progress: the compressed data ran out. */
			if (s->have >= want)
				break;
			return wb_err_set(err, WB_E_ARCHIVE, "tensor '%s': "
			    "reading the member failed: its compressed data "
			    "ends before the stream does", e->key);
		}
		if (r != Z_OK)
			return wb_err_set(err, r == Z_MEM_ERROR ? WB_E_NOMEM :
			    WB_E_ARCHIVE, "tensor '%s': reading the member "
			    "failed: corrupt deflate data (zlib error %d)",
			    e->key, r);
	}
	*buf = s->buf;
	*have = s->have < want ? s->have : want;
	return 0;
}

/*
 * The local header of cd[k] (the k-th member in offset order), held
 * against its directory entry.  lim is where the next member (or the
 * directory) starts.  Sets *data to the offset of the member's data.
 */
static int
npz_local_read(struct npz_win *w, const char *path, const struct npz_cd *cd,
    size_t count, size_t k, uint64_t lim, size_t ahead, uint64_t *data,
    struct wb_err *err)
{
	const struct npz_cd *c = &cd[k];
	const uint8_t *h, *name, *x, *uname;
	char d1[NPZ_DISP_MAX], d2[NPZ_DISP_MAX], conv[NPZ_DISP_MAX];
	uint64_t lsize, lcomp, loff, room;
	uint32_t lcrc;
	size_t nl, xl, unl, i;
	uint16_t flags, method;
	int rc, dos;

	/* The directory pass made room for the header and the name. */
	if ((rc = npz_win_get(w, c->offset, NPZ_LFH_LEN, ahead, &h, err)) != 0)
		return rc;
	if (memcmp(h, "PK\3\4", 4) != 0)
		return wb_err_set(err, WB_E_ARCHIVE, "'%s': damaged zip "
		    "archive at member %zu: no local header at offset %"
		    PRIu64, path, k, c->offset);
	dos = h[5] == 0;
	flags = npz_le16(h + 6);
	method = npz_le16(h + 8);
	lcrc = npz_le32(h + 14);
	lcomp = npz_le32(h + 18);
	lsize = npz_le32(h + 22);
	nl = npz_le16(h + 26);
	xl = npz_le16(h + 28);
	room = lim - c->offset - NPZ_LFH_LEN;
	if (nl > room || xl > room - nl || room - nl - xl < c->comp)
		return npz_overlap_err(path, cd, count, k, err);
	if ((rc = npz_win_get(w, c->offset + NPZ_LFH_LEN, nl + xl, ahead,
	    &name, err)) != 0)
		return rc;
	x = name + nl;
	uname = name;
	unl = nl;
	loff = c->offset;
	if (npz_extra(x, xl, &lsize, &lcomp, &loff, &uname, &unl) < 0)
		return wb_err_set(err, WB_E_ARCHIVE, "'%s': damaged zip "
		    "archive at member %zu: bad extra field in its local "
		    "header", path, k);
	/*
	 * The name a reader sees: a Unicode path record's, and for MS-DOS
	 * a backslash is a separator when there is no slash.
	 */
	if (dos && memchr(uname, '\\', unl) != NULL &&
	    memchr(uname, '/', unl) == NULL) {
		for (i = 0; i < unl && i < sizeof(conv); i++)
			conv[i] = uname[i] == '\\' ? '/' : (char)uname[i];
		return wb_err_set(err, WB_E_ARCHIVE, "'%s': damaged zip "
		    "archive: member %zu is '%s' in its local header but '%s' "
		    "in the central directory", path, k, npz_disp(conv,
		    i, d1, sizeof(d1)), npz_disp(c->name, c->namelen, d2,
		    sizeof(d2)));
	}
	if (nl != c->namelen || memcmp(name, c->name, nl) != 0 ||
	    unl != nl || memcmp(uname, name, nl) != 0)
		return wb_err_set(err, WB_E_ARCHIVE, "'%s': damaged zip "
		    "archive: member %zu is '%s' in its local header but '%s' "
		    "in the central directory", path, k,
		    npz_disp((const char *)uname, unl, d1, sizeof(d1)),
		    npz_disp(c->name, c->namelen, d2, sizeof(d2)));
	if (flags & (NPZ_FLAG_ENCRYPTED | NPZ_FLAG_STRONG))
		return wb_err_set(err, WB_E_ARCHIVE, "member '%s' is encrypted;"
		    " encrypted archives are not supported",
		    npz_disp(c->name, c->namelen, d1, sizeof(d1)));
	if (method != c->method)
		return wb_err_set(err, WB_E_ARCHIVE, "'%s': damaged zip "
		    "archive: member '%s' uses method %s in its local header "
		    "but %s in the central directory", path,
		    npz_disp(c->name, c->namelen, d1, sizeof(d1)),
		    npz_method_name(method), npz_method_name(c->method));
	/* Zero means "in the directory" (a data descriptor follows). */
	if ((lcrc != 0 && lcrc != c->crc) ||
	    (lcomp != 0 && lcomp != c->comp) ||
	    (lsize != 0 && lsize != 0xffffffff && lsize != c->size))
		return wb_err_set(err, WB_E_ARCHIVE, "'%s': damaged zip "
		    "archive: member '%s' has other sizes or CRC in its local "
		    "header than in the central directory", path,
		    npz_disp(c->name, c->namelen, d1, sizeof(d1)));
	*data = c->offset + NPZ_LFH_LEN + nl + xl;
	return 0;
}

/* What libarchive made of a member's mode: only files are members. */
static int
npz_cd_kind(const struct npz_cd *c, struct wb_err *err)
{
	char d[NPZ_DISP_MAX];
	const char *what = NULL;
	uint32_t mode = c->attr >> 16;

	if (c->system == 3 && (mode & 0170000) == 0040000)
		what = "a directory";
	else if (c->system == 3 && (mode & 0170000) == 0120000)
		what = "a symbolic link";
	else if (c->system == 0 && (c->attr & 0x10) != 0)
		what = "a directory";
	if (what == NULL)
		return 0;
	return wb_err_set(err, WB_E_ARCHIVE, "member '%s' is %s, not a .npy "
	    "file", npz_disp(c->name, c->namelen, d, sizeof(d)), what);
}

/*
 * Members are read by a few threads at once when there are many: each
 * takes a run of members in offset order with its own buffers and
 * inflater, and stops at its first bad member.  What a sequential read
 * would report is then reported: the first bad member in archive order,
 * or an earlier one whose data tips the total over its cap.
 */
#define NPZ_PART_MIN	4096		/* members worth a thread */
#define NPZ_PARTS_MAX	4

struct npz_part {
	pthread_t	 tid;
	int		 started;
	struct npz_index_priv *p;
	const struct npz_cd *cd;
	size_t		 ncd, k0, k1;	/* its members: [k0, k1) */
	uint64_t	 cd_off;
	int		 fd;
	const char	*path;
	const struct npz_limits *lim;
	size_t		 bad;		/* its first bad member, or k1 */
	int		 rc;
	struct wb_err	 err;
};

static void *
npz_part_run(void *arg)
{
	struct npz_part *pt = arg;
	const struct npz_cd *cd = pt->cd;
	struct npz_file_src fs;
	struct npz_win win;
	uint64_t data = 0, lim_off;
	size_t k;
	int r, rc = 0;

	memset(&fs, 0, sizeof(fs));
	memset(&win, 0, sizeof(win));
	win.fd = pt->fd;
	win.fsize = pt->p->pub.file_size;
	fs.s.fetch = npz_file_fetch;
	fs.s.first = NPZ_FILE_FIRST;
	fs.s.cap = NPY_PREAMBLE_MAX + NPY_HEADER_MAX;
	fs.win = &win;
	k = pt->k0;
	if ((fs.s.buf = malloc(fs.s.cap)) == NULL) {
		rc = wb_err_set(&pt->err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	/* Raw deflate: zip members have no zlib header. */
	if ((r = inflateInit2(&fs.z, -MAX_WBITS)) != Z_OK) {
		rc = wb_err_set(&pt->err, r == Z_MEM_ERROR ? WB_E_NOMEM :
		    WB_E_INTERNAL, "zlib: inflateInit2 failed (%d)", r);
		goto out;
	}
	fs.z_live = 1;
	for (; k < pt->k1; k++) {
		lim_off = k + 1 < pt->ncd ? cd[k + 1].offset : pt->cd_off;
		/* Small members share one read; a large one reads what its
		 * header needs. */
		fs.ahead = cd[k].comp <= NPZ_WIN / 2 ? NPZ_WIN :
		    NPZ_LFH_LEN + cd[k].namelen + 1024 + 2 * NPZ_FIRST_READ;
		if ((rc = npz_local_read(&win, pt->path, cd, pt->ncd, k,
		    lim_off, fs.ahead, &data, &pt->err)) != 0)
			goto out;
		fs.pos = data;
		fs.left = cd[k].comp;
		fs.ended = 0;
		if (cd[k].method == NPZ_DEFLATED) {
			fs.z.next_in = NULL;
			fs.z.avail_in = 0;
			if (inflateReset(&fs.z) != Z_OK) {
				rc = wb_err_set(&pt->err, WB_E_INTERNAL,
				    "zlib: inflateReset failed");
				goto out;
			}
		} else if (cd[k].comp != cd[k].size) {
			char d[NPZ_DISP_MAX];

			rc = wb_err_set(&pt->err, WB_E_ARCHIVE, "member '%s' "
			    "is stored, but its sizes differ (%" PRIu64 " and %"
			    PRIu64 " bytes)", npz_disp(cd[k].name,
			    cd[k].namelen, d, sizeof(d)), cd[k].comp,
			    cd[k].size);
			goto out;
		}
		if ((rc = npz_member_header(&fs.s, &pt->p->pub.e[k], 1,
		    pt->lim, NULL, &pt->err)) != 0)
			goto out;
	}
out:
	pt->rc = rc;
	pt->bad = k;
	if (fs.z_live)
		inflateEnd(&fs.z);
	free(fs.s.buf);
	free(win.buf);
	return NULL;
}

static int
npz_index_file(struct npz_index_priv *p, int fd, uint64_t fsize,
    const char *path, const struct npz_limits *lim, struct wb_err *err)
{
	struct npz_part part[NPZ_PARTS_MAX];
	struct npz_cd *cd = NULL;
	struct npz_meta m;
	struct npz_entry *e;
	uint8_t *cdbuf = NULL;
	uint64_t cd_off = 0;
	size_t ncd = 0, k, names = 0, nparts = 1, j;
	long ncpu;
	int rc;

	memset(part, 0, sizeof(part));
	if ((rc = npz_cd_read(fd, fsize, path, lim, &cdbuf, &cd, &ncd, &cd_off,
	    err)) != 0)
		goto out;
	/* Vet every member from the central directory before reading data. */
	for (k = 0; k < ncd; k++) {
		memset(&m, 0, sizeof(m));
		m.name = cd[k].name;
		m.namelen = cd[k].namelen;
		m.method = cd[k].method;
		m.method_name = npz_method_name(cd[k].method);
		m.encrypted = (cd[k].flags & (NPZ_FLAG_ENCRYPTED |
		    NPZ_FLAG_STRONG)) != 0 || cd[k].method == 99;
		m.comp_known = m.size_known = 1;
		m.comp = cd[k].comp;
		m.size = cd[k].size;
		if ((rc = npz_check_member(&m, lim, err)) != 0 ||
		    (rc = npz_cd_kind(&cd[k], err)) != 0)
			goto out;
		names += 2 * cd[k].namelen - 2;
	}
	/*
	 * Ask for the headers of big members all at once: a file that is not
	 * in the page cache (a daemon's upload goes to disk past it) then
	 * costs one round of parallel disk reads, not one read per member
	 * in turn.  Small members are read in windows anyway.
	 */
	for (k = 0; k < ncd && k < NPZ_PREFETCH_MAX; k++)
		if (cd[k].comp > NPZ_WIN / 2)
			(void)posix_fadvise(fd, (off_t)cd[k].offset,
			    (off_t)(NPZ_LFH_LEN + cd[k].namelen + 1024 +
			    2 * NPZ_FIRST_READ), POSIX_FADV_WILLNEED);
	/* One block for the entries and one for their names. */
	if ((p->pub.e = calloc(ncd > 0 ? ncd : 1, sizeof(*p->pub.e))) ==
	    NULL || (p->names = malloc(names > 0 ? names : 1)) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	p->cap = ncd;
	for (k = 0; k < ncd; k++) {
		memset(&m, 0, sizeof(m));
		m.name = cd[k].name;
		m.namelen = cd[k].namelen;
		m.method = cd[k].method;
		m.comp_known = m.size_known = 1;
		m.comp = cd[k].comp;
		m.size = cd[k].size;
		if ((rc = npz_entry_add(p, &m, lim, err)) != 0)
			goto out;
		p->pub.e[k].offset = cd[k].offset;
		p->pub.e[k].crc32 = cd[k].crc;
		p->pub.e[k].located = 1;
	}
	if ((rc = npz_keys_sort(p, err)) != 0)
		goto out;

	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	while (nparts < NPZ_PARTS_MAX && (long)nparts < ncpu &&
	    ncd / (nparts + 1) >= NPZ_PART_MIN)
		nparts++;
	for (j = 0; j < nparts; j++) {
		part[j].p = p;
		part[j].cd = cd;
		part[j].ncd = ncd;
		part[j].k0 = ncd * j / nparts;
		part[j].k1 = ncd * (j + 1) / nparts;
		part[j].cd_off = cd_off;
		part[j].fd = fd;
		part[j].path = path;
		part[j].lim = lim;
		/* A part whose thread cannot start is read here. */
		part[j].started = j > 0 && pthread_create(&part[j].tid, NULL,
		    npz_part_run, &part[j]) == 0;
	}
	for (j = 0; j < nparts; j++)
		if (!part[j].started)
			npz_part_run(&part[j]);
	for (j = 0; j < nparts; j++)
		if (part[j].started)
			pthread_join(part[j].tid, NULL);
	/* In archive order: a bad member, or the running total's cap. */
	for (j = 0; j < nparts; j++) {
		for (k = part[j].k0; k < part[j].bad; k++) {
			e = &p->pub.e[k];
			if (e->hdr.nbytes > lim->max_total_bytes ||
			    p->pub.total_bytes > lim->max_total_bytes -
			    e->hdr.nbytes) {
				rc = wb_err_set(err, WB_E_LIMIT, "tensor '%s': "
				    "the archive holds more than the %" PRIu64
				    "-byte cap on tensor data", e->key,
				    lim->max_total_bytes);
				goto out;
			}
			p->pub.total_bytes += e->hdr.nbytes;
		}
		if ((rc = part[j].rc) != 0) {
			if (err != NULL && err->code == WB_OK)
				*err = part[j].err;
			goto out;
		}
	}
out:
	free(cd);
	free(cdbuf);
	return rc;
}

/* ---- reading the index ------------------------------------------------- */

/* A pipe (or anything else that cannot seek): libarchive's streaming
 * reader, which sees only local headers. */
static int
npz_index_stream(struct npz_index_priv *p, int fd, const char *path,
    const struct npz_limits *lim, struct wb_err *err)
{
	struct npz_arc_src as;
	struct archive_entry *ae;
	struct npz_meta m;
	size_t k;
	int r, rc;

	memset(&as, 0, sizeof(as));
	as.s.fetch = npz_arc_fetch;
	as.s.first = NPZ_FIRST_READ;
	if ((rc = npz_archive_open(fd, 0, &as.a, err)) != 0)
		goto out;
	for (k = 0;; k++) {
		r = npz_next_header(as.a, &ae);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK) {
			rc = wb_err_set(err, WB_E_ARCHIVE, "'%s': damaged zip "
			    "archive at member %zu: %s", path, k,
			    archive_error_string(as.a));
			goto out;
		}
		npz_meta_from_archive(as.a, ae, &m);
		if ((rc = npz_check_member(&m, lim, err)) != 0 ||
		    (rc = npz_entry_add(p, &m, lim, err)) != 0)
			goto out;
		if ((rc = npz_member_header(&as.s, &p->pub.e[p->pub.n - 1],
		    m.size_known, lim, &p->pub.total_bytes, err)) != 0)
			goto out;
	}
	rc = npz_keys_sort(p, err);
out:
	if (as.a != NULL)
		archive_read_free(as.a);
	free(as.s.buf);
	return rc;
}

int
npz_index_read(const char *path, const struct npz_limits *lim,
    struct npz_index **out, struct wb_err *err)
{
	struct npz_index_priv *p = NULL;
	struct npz_limits dl;
	struct stat st;
	int fd = -1, rc;

	*out = NULL;
	if (lim == NULL) {
		npz_limits_default(&dl);
		lim = &dl;
	}
	if ((rc = npz_open_fd(path, &fd, &st, err)) != 0)
		goto out;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if (S_ISREG(st.st_mode)) {
		p->pub.file_size = (uint64_t)st.st_size;
		rc = npz_index_file(p, fd, (uint64_t)st.st_size, path, lim,
		    err);
	} else
		rc = npz_index_stream(p, fd, path, lim, err);
	if (rc != 0)
		goto out;
	*out = &p->pub;
	p = NULL;
out:
	if (fd != -1)
		close(fd);
	npz_index_free(p ? &p->pub : NULL);
	return rc;
}

void
npz_index_free(struct npz_index *ix)
{
	struct npz_index_priv *p = (struct npz_index_priv *)ix;
	size_t i;

	if (ix == NULL)
		return;
	for (i = 0; p->names == NULL && i < ix->n; i++) {
		free(ix->e[i].name);
		free(ix->e[i].key);
	}
	free(p->names);
	free(ix->e);
	free(p->by_key);
	free(p);
}

static int
npz_find_cmp(const void *key, const void *elt)
{
	const struct npz_entry *const *e = elt;

	return strcmp(key, (*e)->key);
}

long
npz_index_find(const struct npz_index *ix, const char *key)
{
	const struct npz_index_priv *p = (const struct npz_index_priv *)ix;
	struct npz_entry **hit;

	if (ix == NULL || key == NULL || p->by_key == NULL)
		return -1;
	hit = bsearch(key, p->by_key, ix->n, sizeof(*p->by_key),
	    npz_find_cmp);
	return hit != NULL ? (long)(*hit - ix->e) : -1;
}

json_t *
npz_index_json(const struct npz_index *ix)
{
	json_t *root = NULL, *list, *shape, *t;
	const struct npz_entry *e;
	size_t i;
	int k;

	if ((root = json_object()) == NULL || (list = json_array()) == NULL ||
	    json_object_set_new(root, "tensors", list) != 0)
		goto fail;
	for (i = 0; i < ix->n; i++) {
		e = &ix->e[i];
		if (e->hdr.nbytes > INT64_MAX || (shape = json_array()) == NULL)
			goto fail;
		for (k = 0; k < e->hdr.ndim; k++)
			if (json_array_append_new(shape,
			    json_integer((json_int_t)e->hdr.shape[k])) != 0) {
				json_decref(shape);
				goto fail;
			}
		/* "o" hands shape to the new object, or frees it on error. */
		t = json_pack("{s:s, s:s, s:s, s:o, s:I, s:s}",
		    "key", e->key, "dtype", npy_dtype_name(&e->hdr),
		    "descr", e->hdr.descr, "shape", shape,
		    "bytes", (json_int_t)e->hdr.nbytes,
		    "method", e->method == NPZ_DEFLATED ? "deflated" : "stored");
		if (t == NULL || json_array_append_new(list, t) != 0)
			goto fail;
	}
	if (ix->total_bytes > INT64_MAX ||
	    json_object_set_new(root, "count",
	    json_integer((json_int_t)ix->n)) != 0 ||
	    json_object_set_new(root, "total_bytes",
	    json_integer((json_int_t)ix->total_bytes)) != 0)
		goto fail;
	return root;
fail:
	json_decref(root);
	return NULL;
}

/* ---- the second pass --------------------------------------------------- */

int
npz_reader_open(const char *path, const struct npz_index *ix,
    const struct npz_limits *lim, struct npz_reader **out,
    struct wb_err *err)
{
	struct npz_reader *r = NULL;
	struct stat st;
	int rc;

	*out = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return wb_err_set(err, WB_E_NOMEM, "out of memory");
	r->fd = -1;
	r->cur = -1;
	r->ix = ix;
	if (lim != NULL)
		r->lim = *lim;
	else
		npz_limits_default(&r->lim);
	if ((r->hbuf = malloc(NPY_PREAMBLE_MAX + NPY_HEADER_MAX)) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = npz_open_fd(path, &r->fd, &st, err)) != 0 ||
	    (rc = npz_archive_open(r->fd, S_ISREG(st.st_mode), &r->a,
	    err)) != 0)
		goto out;
	*out = r;
	r = NULL;
out:
	npz_reader_close(r);
	return rc;
}

int
npz_reader_next(struct npz_reader *r, size_t *idx, struct wb_err *err)
{
	const struct npz_entry *e;
	struct archive_entry *ae;
	struct npz_meta m;
	char d[NPZ_DISP_MAX];
	int ar;

	r->cur = -1;
	ar = r->at_end ? ARCHIVE_EOF : npz_next_header(r->a, &ae);
	if (ar == ARCHIVE_EOF) {
		r->at_end = 1;
		if (r->pos == r->ix->n)
			return 0;
		wb_err_set(err, WB_E_ARCHIVE, "archive ended after %zu of its "
		    "%zu members (did the file change?)", r->pos, r->ix->n);
		return -1;
	}
	if (ar != ARCHIVE_OK) {
		wb_err_set(err, WB_E_ARCHIVE, "damaged zip archive at member "
		    "%zu: %s", r->pos, archive_error_string(r->a));
		return -1;
	}
	npz_meta_from_archive(r->a, ae, &m);
	if (r->pos >= r->ix->n) {
		wb_err_set(err, WB_E_ARCHIVE, "member '%s' was not in the "
		    "archive when it was indexed (did the file change?)",
		    npz_disp(m.name, m.namelen, d, sizeof(d)));
		return -1;
	}
	e = &r->ix->e[r->pos];
	if (strcmp(m.name, e->name) != 0) {
		wb_err_set(err, WB_E_ARCHIVE, "member %zu is '%s', the index "
		    "expected '%s' (did the file change?)", r->pos,
		    npz_disp(m.name, m.namelen, d, sizeof(d)), e->key);
		return -1;
	}
	m.comp_known = 0;	/* the ratio was vetted in the first pass */
	if (npz_check_member(&m, &r->lim, err) != 0)
		return -1;
	if (e->hdr.ndim < 0 || (m.size_known && e->size != 0 &&
	    m.size != e->size)) {
		wb_err_set(err, WB_E_ARCHIVE, "tensor '%s': member changed "
		    "since the archive was indexed", e->key);
		return -1;
	}
	if (e->hdr.nbytes > r->lim.max_tensor_bytes) {
		wb_err_set(err, WB_E_LIMIT, "tensor '%s': %" PRIu64 " bytes "
		    "of data, more than the %" PRIu64 "-byte tensor cap",
		    e->key, e->hdr.nbytes, r->lim.max_tensor_bytes);
		return -1;
	}
	if (e->hdr.nbytes > r->lim.max_total_bytes ||
	    r->total > r->lim.max_total_bytes - e->hdr.nbytes) {
		wb_err_set(err, WB_E_LIMIT, "tensor '%s': the archive holds "
		    "more than the %" PRIu64 "-byte cap on tensor data",
		    e->key, r->lim.max_total_bytes);
		return -1;
	}
	r->total += e->hdr.nbytes;
	r->cur = (long)r->pos;
	r->cur_read = 0;
	*idx = r->pos++;
	return 1;
}

/* The header read on the second pass must be the one we planned with. */
static int
npz_header_same(const struct npz_entry *e, const uint8_t *hbuf, size_t len,
    struct wb_err *err)
{
	struct npy_header h;
	size_t need;
	int rc;

	if ((rc = npy_parse(hbuf, len, len, e->key, &h, &need, err)) != 0)
		return rc;
	if (h.data_offset != e->hdr.data_offset || h.ndim != e->hdr.ndim ||
	    h.fortran_order != e->hdr.fortran_order ||
	    strcmp(h.descr, e->hdr.descr) != 0 ||
	    memcmp(h.shape, e->hdr.shape, sizeof(h.shape)) != 0)
		return wb_err_set(err, WB_E_ARCHIVE, "tensor '%s': header "
		    "changed since the archive was indexed", e->key);
	return 0;
}

int
npz_reader_read(struct npz_reader *r, void *buf, size_t len,
    struct wb_err *err)
{
	const struct npz_entry *e;
	size_t got;
	uint8_t probe[1];
	int rc;

	if (r->cur < 0 || r->cur_read)
		return wb_err_set(err, WB_E_USAGE,
		    "npz_reader_read: no member to read");
	e = &r->ix->e[r->cur];
	r->cur_read = 1;
	if (len != e->hdr.nbytes)
		return wb_err_set(err, WB_E_USAGE, "tensor '%s': asked for %zu "
		    "bytes, the tensor has %" PRIu64, e->key, len,
		    e->hdr.nbytes);

	/* The header again: it must still be the one we planned with. */
	if ((rc = npz_read_full(r->a, r->hbuf, (size_t)e->hdr.data_offset,
	    &got, e->key, err)) != 0 ||
	    (rc = npz_header_same(e, r->hbuf, got, err)) != 0)
		return rc;

	/* Exactly nbytes, straight into the caller's buffer. */
	if ((rc = npz_read_full(r->a, buf, len, &got, e->key, err)) != 0)
		return rc;
	if (got < len)
		return wb_err_set(err, WB_E_NPY, "tensor '%s': member ends "
		    "after %zu of the %zu data bytes its header declares",
		    e->key, got, len);
	/*
	 * One more byte proves the member is not longer than it said.  A
	 * deflate member with lying size fields stops here, after at most
	 * one more libarchive block, never expanding to its real size.
	 */
	if ((rc = npz_read_full(r->a, probe, sizeof(probe), &got, e->key,
	    err)) != 0)
		return rc;
	if (got != 0)
		return wb_err_set(err, WB_E_NPY, "tensor '%s': member holds "
		    "more than the %zu data bytes its header declares",
		    e->key, len);
	return 0;
}

void
npz_reader_close(struct npz_reader *r)
{
	if (r == NULL)
		return;
	if (r->a != NULL)
		archive_read_free(r->a);
	if (r->fd != -1)
		close(r->fd);
	free(r->hbuf);
	free(r);
}

/* ---- random access ------------------------------------------------------ */

#define NPZ_INBUF	(1 << 20)	/* compressed bytes per pread */

#define NPZ_DBLOCK	((size_t)2 << 20)	/* bytes per direct read */

struct npz_cursor {
	int		 fd;
	int		 dfd;		/* the same file with O_DIRECT, or -1 */
	uint8_t		*dbuf;		/* NPZ_DBLOCK, page-aligned */
	const struct npz_index *ix;
	struct npz_limits lim;
	uint8_t		*in;		/* NPZ_INBUF */
	uint8_t		*hbuf;		/* NPY_HEADER_MAX + 1 */
	struct inflate_state st;
	/* The member being read (npz_cursor_begin .. npz_cursor_end). */
	const struct npz_entry *cur;
	uint64_t	 pos, left;	/* next compressed byte; bytes left */
	uint64_t	 data_left;	/* data bytes not yet read */
	uint32_t	 crc;
	int		 ended;
};

int
npz_index_random_access(const struct npz_index *ix)
{
	size_t i;

	if (ix == NULL || ix->file_size == 0)
		return 0;
	for (i = 0; i < ix->n; i++)
		if (!ix->e[i].located)
			return 0;
	return 1;
}

static void	npz_cursor_direct(struct npz_cursor *, const char *,
		    const struct stat *);

int
npz_cursor_open(const char *path, const struct npz_index *ix,
    const struct npz_limits *lim, struct npz_cursor **out, struct wb_err *err)
{
	struct npz_cursor *c = NULL;
	struct stat st;
	int rc = 0;

	*out = NULL;
	if (!npz_index_random_access(ix))
		return wb_err_set(err, WB_E_USAGE, "'%s': not indexed from a "
		    "regular file", path);
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	c->fd = c->dfd = -1;
	c->ix = ix;
	if (lim != NULL)
		c->lim = *lim;
	else
		npz_limits_default(&c->lim);
	if ((c->in = malloc(NPZ_INBUF)) == NULL ||
	    (c->hbuf = malloc(NPY_HEADER_MAX + NPY_PREAMBLE_MAX + 1)) == NULL) {
		rc = wb_err_set(err, WB_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = npz_open_fd(path, &c->fd, &st, err)) != 0)
		goto out;
	if ((uint64_t)st.st_size != ix->file_size) {
		rc = wb_err_set(err, WB_E_ARCHIVE, "'%s' changed since it was "
		    "indexed (%lld bytes, was %" PRIu64 ")", path,
		    (long long)st.st_size, ix->file_size);
		goto out;
	}
	npz_cursor_direct(c, path, &st);
	*out = c;
	c = NULL;
out:
	npz_cursor_close(c);
	return rc;
}

void
npz_cursor_close(struct npz_cursor *c)
{
	if (c == NULL)
		return;
	if (c->fd != -1)
		close(c->fd);
	if (c->dfd != -1)
		close(c->dfd);
	free(c->dbuf);
	free(c->in);
	free(c->hbuf);
	free(c);
}

/*
 * A second descriptor with O_DIRECT, for bytes not in the page cache (see
 * npz_cursor_pread).  Best effort: without it every read is buffered.  It
 * must be the very file the first descriptor has open.
 */
static void
npz_cursor_direct(struct npz_cursor *c, const char *path,
    const struct stat *st)
{
	struct stat dst;
	void *p = NULL;

	if ((c->dfd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT)) == -1)
		return;
	if (fstat(c->dfd, &dst) != 0 || dst.st_dev != st->st_dev ||
	    dst.st_ino != st->st_ino ||
	    posix_memalign(&p, 4096, NPZ_DBLOCK) != 0) {
		close(c->dfd);
		c->dfd = -1;
		return;
	}
	c->dbuf = p;
}

/*
 * Read len bytes at off for the converter: from the page cache when they
 * are there (preadv2 with RWF_NOWAIT never waits for the disk), otherwise
 * with O_DIRECT through an aligned block.  An archive the daemon just
 * stored past the cache is then not pulled through fresh cache pages,
 * which on a virtual machine is several times slower than the disk.
 */
static int
npz_cursor_pread(struct npz_cursor *c, void *buf, size_t len, uint64_t off,
    struct wb_err *err)
{
	uint8_t *p = buf;

	while (len > 0 && c->dfd != -1) {
		struct iovec iov = { p, len };
		uint64_t a = off & ~(uint64_t)4095, skip = off - a, want;
		ssize_t n = preadv2(c->fd, &iov, 1, (off_t)off, RWF_NOWAIT);

		if (n == -1 && errno == EINTR)
			continue;
		if (n > 0) {
			p += n;
			off += (uint64_t)n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0 || errno != EAGAIN)
			break;	/* npz_pread below says what is wrong */
		want = (off + len + 4095) & ~(uint64_t)4095;
		want = want - a < NPZ_DBLOCK ? want - a : NPZ_DBLOCK;
		do
			n = pread(c->dfd, c->dbuf, (size_t)want, (off_t)a);
		while (n == -1 && errno == EINTR);
		if (n == -1 && errno == EINVAL) {
			close(c->dfd);	/* O_DIRECT refused after all */
			c->dfd = -1;
			break;
		}
		if (n <= (ssize_t)skip)
			break;
		n -= (ssize_t)skip;
		if ((size_t)n > len)
			n = (ssize_t)len;
		memcpy(p, c->dbuf + skip, (size_t)n);
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return len > 0 ? npz_pread(c->fd, p, len, off, err) : 0;
}

/*
 * One inflate call, reading more compressed bytes first when isa-l has
 * consumed what it had.  Returns 0 and sets *moved to whether any input
 * was taken or output produced; *ended once the stream has finished and
 * all its output is flushed (ISAL_BLOCK_FINISH).
 */
static int
npz_inflate_step(struct npz_cursor *c, const struct npz_entry *e,
    uint64_t *pos, uint64_t *left, int *ended, int *moved,
    struct wb_err *err)
{
	struct inflate_state *st = &c->st;
	uint32_t in0, out0;
	int r, rc;

	if (st->avail_in == 0 && *left > 0) {
		size_t n = *left < NPZ_INBUF ? (size_t)*left : NPZ_INBUF;

		if ((rc = npz_cursor_pread(c, c->in, n, *pos, err)) != 0)
			return rc;
		*pos += n;
		*left -= n;
		st->next_in = c->in;
		st->avail_in = (uint32_t)n;
	}
	in0 = st->avail_in;
	out0 = st->avail_out;
	r = isal_inflate(st);
	if (r != ISAL_DECOMP_OK && r != ISAL_END_INPUT)
		return wb_err_set(err, WB_E_ARCHIVE, "tensor '%s': corrupt "
		    "deflate data (isa-l error %d)", e->key, r);
	if (st->block_state == ISAL_BLOCK_FINISH)
		*ended = 1;
	*moved = st->avail_in != in0 || st->avail_out != out0;
	return 0;
}

/* Inflate exactly len bytes into dst. */
static int
npz_inflate_into(struct npz_cursor *c, const struct npz_entry *e,
    uint64_t *pos, uint64_t *left, uint8_t *dst, size_t len, int *ended,
    struct wb_err *err)
{
	struct inflate_state *st = &c->st;
	int rc, moved;

	st->next_out = dst;
	while (len > 0) {
		uint32_t chunk = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;

		st->avail_out = chunk;
		while (st->avail_out > 0) {
			if (*ended)
				return wb_err_set(err, WB_E_NPY, "tensor '%s': "
				    "member ends before the data its header "
				    "declares", e->key);
			if ((rc = npz_inflate_step(c, e, pos, left, ended,
			    &moved, err)) != 0)
				return rc;
			if (!moved && st->avail_in == 0 && *left == 0)
				return wb_err_set(err, WB_E_NPY, "tensor '%s': "
				    "compressed data ends before the data its "
				    "header declares", e->key);
		}
		len -= chunk;
	}
	return 0;
}

/* After the declared data, the stream must end with nothing more. */
static int
npz_inflate_end(struct npz_cursor *c, const struct npz_entry *e,
    uint64_t *pos, uint64_t *left, int *ended, size_t len,
    struct wb_err *err)
{
	uint8_t probe[1];
	int rc, moved = 1;

	c->st.next_out = probe;
	c->st.avail_out = sizeof(probe);
	while (!*ended && moved) {
		if ((rc = npz_inflate_step(c, e, pos, left, ended, &moved,
		    err)) != 0)
			return rc;
		if (c->st.avail_out == 0)
			return wb_err_set(err, WB_E_NPY, "tensor '%s': member "
			    "holds more than the %zu data bytes its header "
			    "declares", e->key, len);
	}
	if (!*ended)
		return wb_err_set(err, WB_E_NPY, "tensor '%s': compressed "
		    "data is cut short", e->key);
	return 0;
}

/*
 * Start reading member idx: check its local header against the directory
 * and its .npy header against the index.  The data then comes in order
 * through npz_cursor_part(); npz_cursor_end() checks the stream ends there
 * and the CRC-32.
 */
int
npz_cursor_begin(struct npz_cursor *c, size_t idx, struct wb_err *err)
{
	const struct npz_entry *e;
	uint8_t lfh[NPZ_LFH_LEN], probe[64];
	uint64_t pos, left;
	size_t hlen, nlen;
	int rc;

	c->cur = NULL;
	if (idx >= c->ix->n)
		return wb_err_set(err, WB_E_USAGE, "no member %zu", idx);
	e = &c->ix->e[idx];
	hlen = (size_t)e->hdr.data_offset;
	if (hlen > NPY_HEADER_MAX + NPY_PREAMBLE_MAX)
		return wb_err_set(err, WB_E_NPY, "tensor '%s': header too long",
		    e->key);
	if (e->size != hlen + e->hdr.nbytes)
		return wb_err_set(err, WB_E_NPY, "tensor '%s': header says %"
		    PRIu64 " bytes of data, member holds %" PRIu64, e->key,
		    e->hdr.nbytes, e->size > hlen ? e->size - hlen : 0);
	/* The local header must name the member the directory promised. */
	if ((rc = npz_pread(c->fd, lfh, sizeof(lfh), e->offset, err)) != 0)
		return rc;
	nlen = strlen(e->name);
	if (memcmp(lfh, "PK\3\4", 4) != 0 || npz_le16(lfh + 26) != nlen)
		return wb_err_set(err, WB_E_ARCHIVE, "member '%s': bad local "
		    "header at offset %" PRIu64, e->name, e->offset);
	pos = e->offset + NPZ_LFH_LEN;
	if (nlen > sizeof(probe))
		nlen = sizeof(probe);
	if ((rc = npz_pread(c->fd, probe, nlen, pos, err)) != 0)
		return rc;
	if (memcmp(probe, e->name, nlen) != 0)
		return wb_err_set(err, WB_E_ARCHIVE, "member '%s': its local "
		    "header names another member", e->name);
	pos += npz_le16(lfh + 26) + npz_le16(lfh + 28);
	left = e->comp_size;
	if (pos > c->ix->file_size || left > c->ix->file_size - pos)
		return wb_err_set(err, WB_E_ARCHIVE, "member '%s': data runs "
		    "past the end of the archive", e->name);
	c->pos = pos;
	c->left = left;
	c->ended = 0;
	if (e->method == NPZ_STORED) {
		if (left != e->size)
			return wb_err_set(err, WB_E_ARCHIVE, "member '%s': "
			    "stored, but its sizes differ", e->name);
		if ((rc = npz_cursor_pread(c, c->hbuf, hlen, c->pos,
		    err)) != 0)
			return rc;
		c->pos += hlen;
		c->left -= hlen;
	} else {
		isal_inflate_init(&c->st);
		c->st.crc_flag = ISAL_DEFLATE;
		if ((rc = npz_inflate_into(c, e, &c->pos, &c->left, c->hbuf,
		    hlen, &c->ended, err)) != 0)
			return rc;
	}
	if ((rc = npz_header_same(e, c->hbuf, hlen, err)) != 0)
		return rc;
	c->crc = crc32_gzip_refl(0, c->hbuf, hlen);
	c->data_left = e->hdr.nbytes;
	c->cur = e;
	return 0;
}

/* The next len bytes of the member's data. */
int
npz_cursor_part(struct npz_cursor *c, void *buf, size_t len,
    struct wb_err *err)
{
	const struct npz_entry *e = c->cur;
	int rc;

	if (e == NULL)
		return wb_err_set(err, WB_E_USAGE, "no member is being read");
	if (len > c->data_left)
		return wb_err_set(err, WB_E_USAGE, "tensor '%s': asked for %zu "
		    "more bytes, %" PRIu64 " are left", e->key, len,
		    c->data_left);
	if (e->method == NPZ_STORED) {
		if ((rc = npz_cursor_pread(c, buf, len, c->pos, err)) != 0)
			return rc;
		c->pos += len;
		c->left -= len;
	} else if ((rc = npz_inflate_into(c, e, &c->pos, &c->left, buf, len,
	    &c->ended, err)) != 0) {
		return rc;
	}
	c->crc = crc32_gzip_refl(c->crc, buf, len);
	c->data_left -= len;
	return 0;
}

/* All the data was read: nothing may follow, and the CRC-32 must match. */
int
npz_cursor_end(struct npz_cursor *c, struct wb_err *err)
{
	const struct npz_entry *e = c->cur;
	int rc;

	c->cur = NULL;
	if (e == NULL)
		return wb_err_set(err, WB_E_USAGE, "no member is being read");
	if (c->data_left != 0)
		return wb_err_set(err, WB_E_USAGE, "tensor '%s': %" PRIu64
		    " bytes were not read", e->key, c->data_left);
	if (e->method != NPZ_STORED && (rc = npz_inflate_end(c, e, &c->pos,
	    &c->left, &c->ended, (size_t)e->hdr.nbytes, err)) != 0)
		return rc;
	if (c->crc != e->crc32)
		return wb_err_set(err, WB_E_ARCHIVE, "member '%s': CRC-32 is "
		    "%08x, the directory says %08x: the archive is damaged",
		    e->name, c->crc, e->crc32);
	return 0;
}

int
npz_cursor_read(struct npz_cursor *c, size_t idx, void *buf, size_t len,
    struct wb_err *err)
{
	int rc;

	if (idx < c->ix->n && len != c->ix->e[idx].hdr.nbytes)
		return wb_err_set(err, WB_E_USAGE, "tensor '%s': asked for %zu "
		    "bytes, the tensor has %" PRIu64, c->ix->e[idx].key, len,
		    c->ix->e[idx].hdr.nbytes);
	if ((rc = npz_cursor_begin(c, idx, err)) != 0 ||
	    (rc = npz_cursor_part(c, buf, len, err)) != 0)
		return rc;
	return npz_cursor_end(c, err);
}
