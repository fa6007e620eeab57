/* The zygote binary the executor tests spawn (evscriptd --zygote FD does
 * the same in the daemon). */
#include <stdlib.h>
#include <string.h>

#include "executor.h"

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--zygote") == 0)
		return executor_zygote_main(atoi(argv[2]));
	return 2;
}
