/*
 * wbfault: an LD_PRELOAD shim that makes the N-th allocation, read, write,
 * fsync or rename of a process fail, for allocation- and I/O-failure
 * torture runs (tests/fault/torture.py, docs/reliability.md).
 *
 * It wraps malloc, calloc, realloc, posix_memalign, aligned_alloc,
 * read, pread, preadv2, write, pwrite, fallocate (a write, failing with
 * ENOSPC), fsync, fdatasync, rename and renameat, and
 * hands every call to the next definition (glibc, or the sanitizer's
 * interceptors when preloaded into an ASan build, or valgrind's
 * replacements).  Calls are counted per class once the process is armed:
 * at start-up, or, when WBFAULT_MARK is set, at the first open() of a
 * path containing that string, so the dynamic loader's and libraries'
 * start-up work is left alone and N counts from the work under test.
 *
 *   WBFAULT_FAIL=alloc:N   fail the N-th allocation (NULL, ENOMEM);
 *                read:N | write:N | fsync:N | rename:N   (-1, EIO);
 *                any:N     the N-th call of any class
 *   WBFAULT_MARK=STR       arm at the first open() of a path with STR
 *   WBFAULT_SKIP=A,B       leave alone allocations made on behalf of the
 *                          shared objects whose file names contain A or B
 *                          (the first caller outside libc decides)
 *   WBFAULT_DEBUG=1        list the loaded objects and their kind when armed
 *   WBFAULT_REPORT=PATH    at exit write the counts and what was injected;
 *                          on a crash write PATH.crash: the signal, the
 *                          injected call and a backtrace (not under a
 *                          sanitizer, which reports crashes itself)
 *
 * WBFAULT_SKIP exists because some libraries do not survive a failed
 * allocation (HDF5 1.10 crashes in its property lists and error stack,
 * libarchive exits the process on some); the torture then covers our code
 * and what it calls, and those libraries' own allocations are left to
 * them.  docs/reliability.md lists what was found that way.
 *
 * Calls made inside libc (stdio's own reads and writes, fopen) bypass the
 * symbol table and are not seen; the library's own calls all are.
 * Nothing here allocates: counters are atomics, the report is formatted
 * into a stack buffer and written with the real write.
 */
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <signal.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum wbf_class {
	WBF_ALLOC,
	WBF_READ,
	WBF_WRITE,
	WBF_FSYNC,
	WBF_RENAME,
	WBF_NCLASS,
	WBF_ANY = WBF_NCLASS
};

static const char *const wbf_names[] = {
	"alloc", "read", "write", "fsync", "rename", "any"
};

#define WBF_BOOT_SIZE	(64 * 1024)	/* allocations made while resolving */
#define WBF_MARK_MAX	512
#define WBF_SKIP_MAX	512
#define WBF_OBJS_MAX	64		/* loaded objects we classify */
#define WBF_FRAMES	12

/* A loaded object's text, and what its calls to the allocator mean. */
struct wbf_obj {
	uintptr_t	 lo, hi;
	int		 kind;		/* WBF_OBJ_* */
};

enum {
	WBF_OBJ_OTHER = 0,
	WBF_OBJ_PASS,		/* libc, the loader, the shim: look further */
	WBF_OBJ_SKIP		/* named in WBFAULT_SKIP */
};

static struct wbf_obj	 wbf_objs[WBF_OBJS_MAX];
static __thread int	 wbf_in_bt;	/* backtrace() must not recurse */
static int		 wbf_nobjs;
static char		 wbf_skip[WBF_SKIP_MAX];

static atomic_ulong	 wbf_count[WBF_NCLASS + 1];
static atomic_int	 wbf_armed;
static atomic_int	 wbf_done;	/* the failure was injected */
static int		 wbf_class = -1;
static unsigned long	 wbf_nth;
static char		 wbf_mark[WBF_MARK_MAX];
static char		 wbf_injected[128];
static int		 wbf_ready;

static void	*(*real_malloc)(size_t);
static void	*(*real_calloc)(size_t, size_t);
static void	*(*real_realloc)(void *, size_t);
static void	 (*real_free)(void *);
static int	 (*real_posix_memalign)(void **, size_t, size_t);
static void	*(*real_aligned_alloc)(size_t, size_t);
static ssize_t	 (*real_read)(int, void *, size_t);
static ssize_t	 (*real_pread)(int, void *, size_t, off_t);
static ssize_t	 (*real_preadv2)(int, const struct iovec *, int, off_t, int);
static ssize_t	 (*real_write)(int, const void *, size_t);
static ssize_t	 (*real_pwrite)(int, const void *, size_t, off_t);
static int	 (*real_fallocate)(int, int, off_t, off_t);
static int	 (*real_fsync)(int);
static int	 (*real_fdatasync)(int);
static int	 (*real_rename)(const char *, const char *);
static int	 (*real_renameat)(int, const char *, int, const char *);
static int	 (*real_open)(const char *, int, ...);
static int	 (*real_openat)(int, const char *, int, ...);

/*
 * dlsym may allocate (its error state) before real_calloc is known; those
 * few allocations come from a static arena and are never freed.
 */
static _Alignas(max_align_t) unsigned char wbf_boot[WBF_BOOT_SIZE];
static size_t		 wbf_boot_used;
static int		 wbf_resolving;

static void *
wbf_boot_alloc(size_t n)
{
	size_t a = (n + 15) & ~(size_t)15;
	void *p;

	if (a > WBF_BOOT_SIZE - wbf_boot_used)
		return NULL;
	p = wbf_boot + wbf_boot_used;
	wbf_boot_used += a;
	return p;
}

static int
wbf_in_boot(const void *p)
{
	return (const unsigned char *)p >= wbf_boot &&
	    (const unsigned char *)p < wbf_boot + WBF_BOOT_SIZE;
}

/* Is name (a loaded object's path) one of the comma-separated wbf_skip? */
static int
wbf_skipped(const char *name)
{
	const char *p = wbf_skip, *e;
	char one[128];
	size_t n;

	while (*p != '\0') {
		e = strchr(p, ',');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (n > 0 && n < sizeof(one)) {
			memcpy(one, p, n);
			one[n] = '\0';
			if (strstr(name, one) != NULL)
				return 1;
		}
		p += n + (e != NULL);
	}
	return 0;
}

static int
wbf_obj_add(struct dl_phdr_info *info, size_t size, void *arg)
{
	const char *name = info->dlpi_name;
	uintptr_t lo = UINTPTR_MAX, hi = 0, a;
	int i, kind;

	if (wbf_nobjs >= WBF_OBJS_MAX)
		return 1;
	for (i = 0; i < info->dlpi_phnum; i++) {
		if (info->dlpi_phdr[i].p_type != PT_LOAD ||
		    !(info->dlpi_phdr[i].p_flags & PF_X))
			continue;
		a = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
		if (a < lo)
			lo = a;
		if (a + info->dlpi_phdr[i].p_memsz > hi)
			hi = a + info->dlpi_phdr[i].p_memsz;
	}
	if (hi == 0)
		return 0;
	if (name[0] != '\0' && wbf_skipped(name))
		kind = WBF_OBJ_SKIP;
	else if (strstr(name, "/libc.so") != NULL || strstr(name,
	    "/ld-linux") != NULL || strstr(name, "libwbfault") != NULL ||
	    strstr(name, "/libasan") != NULL || strstr(name, "/libubsan") !=
	    NULL || strstr(name, "/libgcc_s") != NULL)
		kind = WBF_OBJ_PASS;
	else
		kind = WBF_OBJ_OTHER;
	wbf_objs[wbf_nobjs].lo = lo;
	wbf_objs[wbf_nobjs].hi = hi;
	wbf_objs[wbf_nobjs].kind = kind;
	wbf_nobjs++;
	return 0;
}

/*
 * Is this allocation made on behalf of a skipped object?  The first frame
 * outside libc, the loader, the sanitizer runtime and the shim decides;
 * an address in no known object (the main program) is never skipped, a
 * stack with no such frame (a thread being set up) always is.
 */
static int
wbf_alloc_skipped(void)
{
	void *frames[WBF_FRAMES];
	uintptr_t a;
	int n, i, k, kind;

	if (wbf_skip[0] == '\0' || wbf_in_bt)
		return 0;
	wbf_in_bt = 1;
	n = backtrace(frames, WBF_FRAMES);
	wbf_in_bt = 0;
	for (i = 1; i < n; i++) {
		a = (uintptr_t)frames[i];
		kind = WBF_OBJ_OTHER;
		for (k = 0; k < wbf_nobjs; k++)
			if (a >= wbf_objs[k].lo && a < wbf_objs[k].hi) {
				kind = wbf_objs[k].kind;
				break;
			}
		if (kind != WBF_OBJ_PASS)
			return kind == WBF_OBJ_SKIP;
	}
	/* No caller of ours at all: libc or the runtime working for itself. */
	return 1;
}

#define WBF_RESOLVE(name)	\
	(real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name))

/*
 * Start counting.  The table of loaded objects is made here, not at load
 * time: a sanitizer runtime intercepts dl_iterate_phdr and may not be
 * initialised when our constructor runs.
 */
static void
wbf_arm(void)
{
	void *frames[2];

	if (wbf_skip[0] != '\0' && wbf_nobjs == 0)
		dl_iterate_phdr(wbf_obj_add, NULL);
	/* backtrace() loads its unwinder on first use; do it now. */
	wbf_resolving = 1;
	(void)backtrace(frames, 2);
	wbf_resolving = 0;
	if (getenv("WBFAULT_DEBUG") != NULL) {
		char b[128];
		int i, n;

		for (i = 0; i < wbf_nobjs; i++) {
			n = snprintf(b, sizeof(b), "wbfault: object %#lx-%#lx "
			    "kind %d\n", (unsigned long)wbf_objs[i].lo,
			    (unsigned long)wbf_objs[i].hi, wbf_objs[i].kind);
			(void)real_write(2, b, (size_t)n);
		}
	}
	atomic_store(&wbf_armed, 1);
}

static void
wbf_resolve(void)
{
	if (wbf_ready || wbf_resolving)
		return;
	wbf_resolving = 1;
	WBF_RESOLVE(malloc);
	WBF_RESOLVE(calloc);
	WBF_RESOLVE(realloc);
	WBF_RESOLVE(free);
	WBF_RESOLVE(posix_memalign);
	WBF_RESOLVE(aligned_alloc);
	WBF_RESOLVE(read);
	WBF_RESOLVE(pread);
	WBF_RESOLVE(preadv2);
	WBF_RESOLVE(write);
	WBF_RESOLVE(pwrite);
	WBF_RESOLVE(fallocate);
	WBF_RESOLVE(fsync);
	WBF_RESOLVE(fdatasync);
	WBF_RESOLVE(rename);
	WBF_RESOLVE(renameat);
	WBF_RESOLVE(open);
	WBF_RESOLVE(openat);
	wbf_resolving = 0;
	wbf_ready = 1;
}

/*
 * Read the settings.  Only from our constructor: a sanitizer runtime
 * calls malloc (and so wbf_resolve) before libc has set up the
 * environment, when getenv still finds nothing.
 */
static void
wbf_config(void)
{
	const char *f, *colon;
	size_t i;

	if ((f = getenv("WBFAULT_FAIL")) != NULL &&
	    (colon = strchr(f, ':')) != NULL) {
		for (i = 0; i <= WBF_NCLASS; i++)
			if (strlen(wbf_names[i]) == (size_t)(colon - f) &&
			    strncmp(f, wbf_names[i], (size_t)(colon - f)) == 0)
				wbf_class = (int)i;
		wbf_nth = strtoul(colon + 1, NULL, 10);
		if (wbf_nth == 0)
			wbf_class = -1;
	}
	if ((f = getenv("WBFAULT_SKIP")) != NULL && *f != '\0' &&
	    strlen(f) < sizeof(wbf_skip))
		memcpy(wbf_skip, f, strlen(f) + 1);
	if ((f = getenv("WBFAULT_MARK")) != NULL && *f != '\0' &&
	    strlen(f) < sizeof(wbf_mark))
		memcpy(wbf_mark, f, strlen(f) + 1);
	else
		wbf_arm();
}

/* Count a call of class c; 1 if this one is to fail. */
static int
wbf_hit(enum wbf_class c, const char *fn)
{
	unsigned long n, any;

	if (!atomic_load(&wbf_armed) || wbf_resolving)
		return 0;
	if (c == WBF_ALLOC && wbf_alloc_skipped())
		return 0;
	n = atomic_fetch_add(&wbf_count[c], 1) + 1;
	any = atomic_fetch_add(&wbf_count[WBF_ANY], 1) + 1;
	if (wbf_class < 0 || atomic_load(&wbf_done))
		return 0;
	if ((wbf_class == (int)c && n == wbf_nth) ||
	    (wbf_class == WBF_ANY && any == wbf_nth)) {
		if (atomic_exchange(&wbf_done, 1) != 0)
			return 0;
		snprintf(wbf_injected, sizeof(wbf_injected), "%s:%lu %s",
		    wbf_names[c], n, fn);
		return 1;
	}
	return 0;
}

/*
 * On a crash, leave the signal, the injected call and the stack where the
 * torture runner finds them, then die of the same signal.  Only
 * async-signal-safe calls (backtrace was loaded at arming time).
 */
static void
wbf_crash(int sig)
{
	const char *path = getenv("WBFAULT_REPORT");
	char name[WBF_MARK_MAX + 8], buf[256];
	void *frames[48];
	int fd, n;

	if (path != NULL && strlen(path) + 7 < sizeof(name) &&
	    real_open != NULL && real_write != NULL) {
		memcpy(name, path, strlen(path));
		memcpy(name + strlen(path), ".crash", 7);
		if ((fd = real_open(name, O_WRONLY | O_CREAT | O_TRUNC |
		    O_CLOEXEC, 0600)) != -1) {
			n = snprintf(buf, sizeof(buf), "signal %d\ninjected %s\n",
			    sig, atomic_load(&wbf_done) ? wbf_injected : "-");
			if (n > 0)
				(void)real_write(fd, buf, (size_t)n);
			n = backtrace(frames, 48);
			backtrace_symbols_fd(frames, n, fd);
			close(fd);
		}
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void
wbf_crash_handlers(void)
{
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };
	static unsigned char altstack[64 * 1024];
	struct sigaction sa;
	stack_t ss;
	size_t i;

	if (getenv("WBFAULT_REPORT") == NULL ||
	    dlsym(RTLD_DEFAULT, "__asan_init") != NULL ||
	    dlsym(RTLD_DEFAULT, "__tsan_init") != NULL)
		return;
	ss.ss_sp = altstack;
	ss.ss_size = sizeof(altstack);
	ss.ss_flags = 0;
	(void)sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wbf_crash;
	sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		(void)sigaction(sigs[i], &sa, NULL);
}

__attribute__((constructor)) static void
wbf_init(void)
{
	wbf_resolve();
	wbf_config();
	wbf_crash_handlers();
}

__attribute__((destructor)) static void
wbf_fini(void)
{
	const char *path = getenv("WBFAULT_REPORT");
	char buf[512];
	int fd, n;

	if (path == NULL || real_open == NULL || real_write == NULL)
		return;
	n = snprintf(buf, sizeof(buf), "alloc %lu\nread %lu\nwrite %lu\n"
	    "fsync %lu\nrename %lu\nany %lu\ninjected %s\n",
	    atomic_load(&wbf_count[WBF_ALLOC]),
	    atomic_load(&wbf_count[WBF_READ]),
	    atomic_load(&wbf_count[WBF_WRITE]),
	    atomic_load(&wbf_count[WBF_FSYNC]),
	    atomic_load(&wbf_count[WBF_RENAME]),
	    atomic_load(&wbf_count[WBF_ANY]),
	    atomic_load(&wbf_done) ? wbf_injected : "-");
	if ((fd = real_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1)
		return;
	if (n > 0)
		(void)real_write(fd, buf, (size_t)n);
	close(fd);
}

/* ---- allocation ---------------------------------------------------------- */

void *
malloc(size_t n)
{
	if (real_malloc == NULL) {
		if (wbf_resolving)
			return wbf_boot_alloc(n);
		wbf_resolve();
	}
	if (wbf_hit(WBF_ALLOC, "malloc")) {
		errno = ENOMEM;
		return NULL;
	}
	return real_malloc(n);
}

void *
calloc(size_t a, size_t b)
{
	void *p;

	if (real_calloc == NULL) {
		if (wbf_resolving) {
			if (b != 0 && a > SIZE_MAX / b)
				return NULL;
			if ((p = wbf_boot_alloc(a * b)) != NULL)
				memset(p, 0, a * b);
			return p;
		}
		wbf_resolve();
	}
	if (wbf_hit(WBF_ALLOC, "calloc")) {
		errno = ENOMEM;
		return NULL;
	}
	return real_calloc(a, b);
}

void *
realloc(void *p, size_t n)
{
	if (real_realloc == NULL)
		wbf_resolve();
	if (wbf_in_boot(p)) {
		size_t left = (size_t)(wbf_boot + WBF_BOOT_SIZE -
		    (unsigned char *)p);
		void *q = malloc(n);

		/* The block's size is unknown; it cannot pass the arena. */
		if (q != NULL)
			memcpy(q, p, n < left ? n : left);
		return q;
	}
	if (wbf_hit(WBF_ALLOC, "realloc")) {
		errno = ENOMEM;
		return NULL;
	}
	return real_realloc(p, n);
}

void
free(void *p)
{
	if (p == NULL || wbf_in_boot(p))
		return;
	if (real_free == NULL)
		wbf_resolve();
	real_free(p);
}

int
posix_memalign(void **out, size_t align, size_t n)
{
	if (real_posix_memalign == NULL)
		wbf_resolve();
	if (wbf_hit(WBF_ALLOC, "posix_memalign"))
		return ENOMEM;
	return real_posix_memalign(out, align, n);
}

void *
aligned_alloc(size_t align, size_t n)
{
	if (real_aligned_alloc == NULL)
		wbf_resolve();
	if (wbf_hit(WBF_ALLOC, "aligned_alloc")) {
		errno = ENOMEM;
		return NULL;
	}
	return real_aligned_alloc(align, n);
}

/* ---- I/O ------------------------------------------------------------------ */

ssize_t
read(int fd, void *buf, size_t n)
{
	if (real_read == NULL)
		wbf_resolve();
	if (wbf_hit(WBF_READ, "read")) {
		errno = EIO;
		return -1;
	}
	return real_read(fd, buf, n);
}

ssize_t
pread(int fd, void *buf, size_t n, off_t off)
{
	if (real_pread == NULL)
		wbf_resolve();
	if (wbf_hit(WBF_READ, "pread")) {
		errno = EIO;
		return -1;
	}
	return real_pread(fd, buf, n, off);
}

ssize_t
preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (real_preadv2 == NULL)
		wbf_resolve();
	if (wbf_hit(WBF_READ, "preadv2")) {
		errno = EIO;
		return -1;
	}
	return real_preadv2(fd, iov, cnt, off, flags);
}

ssize_t	pread64(int, void *, size_t, off_t);

ssize_t
pread64(int fd, void *buf, size_t n, off_t off)
{
	return pread(fd, buf, n, off);
}

ssize_t
write(int fd, const void *buf, size_t n)
{
	if (real_write == NULL)
		wbf_resolve();
	/* stdout and stderr stay usable, so failures can be reported. */
	if (fd > 2 && wbf_hit(WBF_WRITE, "write")) {
		errno = EIO;
		return -1;
	}
	return real_write(fd, buf, n);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (real_pwrite == NULL)
		wbf_resolve();
	if (wbf_hit(WBF_WRITE, "pwrite")) {
		errno = EIO;
		return -1;
	}
	return real_pwrite(fd, buf, n, off);
}

ssize_t	pwrite64(int, const void *, size_t, off_t);

ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite(fd, buf, n, off);
}

/* A full disk refuses a reservation with ENOSPC. */
int
fallocate(int fd, int mode, off_t off, off_t len)
{
	if (real_fallocate == NULL)
		wbf_resolve();
	if (wbf_hit(WBF_WRITE, "fallocate")) {
		errno = ENOSPC;
		return -1;
	}
	return real_fallocate(fd, mode, off, len);
}

int	fallocate64(int, int, off_t, off_t);

int
fallocate64(int fd, int mode, off_t off, off_t len)
{
	return fallocate(fd, mode, off, len);
}

int
fsync(int fd)
{
	if (real_fsync == NULL)
		wbf_resolve();
	if (wbf_hit(WBF_FSYNC, "fsync")) {
		errno = EIO;
		return -1;
	}
	return real_fsync(fd);
}

int
fdatasync(int fd)
{
	if (real_fdatasync == NULL)
		wbf_resolve();
	if (wbf_hit(WBF_FSYNC, "fdatasync")) {
		errno = EIO;
		return -1;
	}
	return real_fdatasync(fd);
}

int
rename(const char *from, const char *to)
{
	if (real_rename == NULL)
		wbf_resolve();
	if (wbf_hit(WBF_RENAME, "rename")) {
		errno = EIO;
		return -1;
	}
	return real_rename(from, to);
}

int
renameat(int dfrom, const char *from, int dto, const char *to)
{
	if (real_renameat == NULL)
		wbf_resolve();
	if (wbf_hit(WBF_RENAME, "renameat")) {
		errno = EIO;
		return -1;
	}
	return real_renameat(dfrom, from, dto, to);
}

/* ---- the start marker ----------------------------------------------------- */

static void
wbf_check_mark(const char *path)
{
	if (wbf_mark[0] != '\0' && path != NULL && !atomic_load(&wbf_armed) &&
	    strstr(path, wbf_mark) != NULL)
		wbf_arm();
}

int
open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode = 0;

	if (real_open == NULL)
		wbf_resolve();
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	wbf_check_mark(path);
	return real_open(path, flags, mode);
}

int	open64(const char *, int, ...);

int
open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode = 0;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	return open(path, flags, mode);
}

int
openat(int dfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode = 0;

	if (real_openat == NULL)
		wbf_resolve();
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	wbf_check_mark(path);
	return real_openat(dfd, path, flags, mode);
}
