#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace mllm {

MappedFile::MappedFile(const std::string& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open '", path, "': ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail("'", path, "' is not a readable regular file");
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ == 0) {
        ::close(fd);
        fail("'", path, "' is empty");
    }
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_errno = errno;
    ::close(fd);
    if (p == MAP_FAILED) fail("cannot map '", path, "': ", std::strerror(map_errno));
    data_ = static_cast<const uint8_t*>(p);
}

void MappedFile::populate() const {
#ifdef MADV_POPULATE_READ
    if (::madvise(const_cast<uint8_t*>(data_), size_, MADV_POPULATE_READ) == 0) return;
    // Only a kernel without it (before Linux 5.14) is worth the fallback: other errors (I/O,
    // memory) would fault the same way when a page is read, and a fault there is a SIGBUS.
    if (errno != EINVAL) return;
#endif
    const long page = ::sysconf(_SC_PAGESIZE);
    uint8_t sink = 0;
    for (size_t off = 0; off < size_; off += static_cast<size_t>(page > 0 ? page : 4096))
        sink ^= *static_cast<const volatile uint8_t*>(data_ + off);
    (void)sink;
}

MappedFile::~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace mllm
