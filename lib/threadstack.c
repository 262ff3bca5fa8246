#include "threadstack.h"

#include <link.h>

/* Adds the static TLS block of one loaded object, aligned, to *arg. */
static int add_static_tls(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_TLS) {
            size_t align = ph->p_align ? ph->p_align : 1;
            *(size_t *)arg += (ph->p_memsz + align - 1) / align * align;
        }
    }
    return 0;
}

size_t threadstack_size(size_t want)
{
    size_t tls = 0;
    dl_iterate_phdr(add_static_tls, &tls);
    return want + tls;
}
