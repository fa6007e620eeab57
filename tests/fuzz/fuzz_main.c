/* fuzz_main.c - runs a libFuzzer harness without libFuzzer: feeds it every
 * file in the directories (or the files) named on the command line. Used in
 * normal builds so that each seed corpus and each crash found by fuzzing
 * (tests/fuzz/regressions/<name>/) is a regression test under ctest. A
 * directory that does not exist is skipped; no input at all is a failure. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

#define INPUT_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	char *data = NULL;
	size_t len = 0;
	int rc = util_read_file(path, INPUT_MAX, &data, &len);

	if (rc) {
		fprintf(stderr, "%s: %s\n", path, strerror(-rc));
		return -1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)data, len);
	free(data);
	return 0;
}

int main(int argc, char **argv)
{
	size_t runs = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		DIR *d;
		struct dirent *de;

		if (stat(argv[i], &st) != 0) {
			if (errno == ENOENT)
				continue;
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) != 0)
				return 1;
			runs++;
			continue;
		}
		d = opendir(argv[i]);
		if (d == NULL) {
			perror(argv[i]);
			return 1;
		}
		while ((de = readdir(d)) != NULL) {
			char *path;

			if (de->d_name[0] == '.')
				continue;
			path = util_path_join(argv[i], de->d_name);
			if (path == NULL || run_file(path) != 0) {
				free(path);
				closedir(d);
				return 1;
			}
			free(path);
			runs++;
		}
		closedir(d);
	}
	printf("%zu inputs run\n", runs);
	return runs > 0 ? 0 : 1;
}
