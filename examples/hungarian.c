/* hungarian: minimum-cost perfect matching of workers to jobs.
 *
 * Reads N (at most MAX_N) and an N x N cost matrix (row = worker, column = job)
 * and runs the Hungarian algorithm in its O(N^3) shortest-augmenting-path form
 * with potentials. Prints the job of every worker, the total cost, and the final
 * potentials u (workers) and v (jobs): they satisfy u[i] + v[j] <= cost[i][j]
 * for every pair, with equality on the matching, which proves it optimal. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_N 10
#define INFINITE_COST INT_MAX
#define NONE 0 /* index 0 is the algorithm's virtual "no worker" / start column */

/* Arrays are 1-based below (index 0 is the virtual column), as in the textbook
 * formulation of the algorithm. */
static int cost[MAX_N + 1][MAX_N + 1];
static int worker_potential[MAX_N + 1], job_potential[MAX_N + 1];
static int worker_of_job[MAX_N + 1];  /* 0 = unassigned */
static int previous_job[MAX_N + 1];   /* job before this one on the augmenting path */
static int min_slack[MAX_N + 1];      /* least reduced cost reaching each job */
static bool job_visited[MAX_N + 1];

/* Adds `delta` to the potentials of the visited part of the tree and takes it
 * off the slack of the rest. */
static void shift_potentials(int n, int delta) {
    for (int job = 0; job <= n; job++) {
        if (job_visited[job]) {
            worker_potential[worker_of_job[job]] += delta;
            job_potential[job] -= delta;
        } else {
            min_slack[job] -= delta;
        }
    }
}

/* Grows a tree of tight edges from `worker` until it reaches a free job;
 * returns that job. */
static int find_free_job(int n, int worker) {
    worker_of_job[NONE] = worker;
    int job = NONE;
    for (int j = 0; j <= n; j++) {
        min_slack[j] = INFINITE_COST;
        job_visited[j] = false;
    }
    do {
        job_visited[job] = true;
        int current_worker = worker_of_job[job];
        int delta = INFINITE_COST, next_job = NONE;
        for (int j = 1; j <= n; j++) {
            if (job_visited[j])
                continue;
            int slack = cost[current_worker][j] - worker_potential[current_worker] - job_potential[j];
            if (slack < min_slack[j]) {
                min_slack[j] = slack;
                previous_job[j] = job;
            }
            if (min_slack[j] < delta) {
                delta = min_slack[j];
                next_job = j;
            }
        }
        shift_potentials(n, delta);
        job = next_job;
    } while (worker_of_job[job] != NONE);
    return job;
}

/* Flips the augmenting path that ends at `job`. */
static void augment(int job) {
    while (job != NONE) {
        int before = previous_job[job];
        worker_of_job[job] = worker_of_job[before];
        job = before;
    }
}

static void solve_assignment(int n) {
    for (int worker = 1; worker <= n; worker++)
        augment(find_free_job(n, worker));
}

static bool read_matrix(int *n) {
    if (scanf("%d", n) != 1 || *n < 1 || *n > MAX_N)
        return false;
    for (int i = 1; i <= *n; i++)
        for (int j = 1; j <= *n; j++)
            if (scanf("%d", &cost[i][j]) != 1)
                return false;
    return true;
}

static void print_potentials(const char *name, const int *potential, int n) {
    printf("%s:", name);
    for (int i = 1; i <= n; i++)
        printf(" %d", potential[i]);
    putchar('\n');
}

int main(void) {
    int n;
    if (!read_matrix(&n)) {
        printf("expected N (1..%d) and an N x N cost matrix\n", MAX_N);
        return 1;
    }
    solve_assignment(n);

    int job_of_worker[MAX_N + 1];
    for (int job = 1; job <= n; job++)
        job_of_worker[worker_of_job[job]] = job;
    int total = 0;
    for (int worker = 1; worker <= n; worker++) {
        int job = job_of_worker[worker];
        printf("worker %2d -> job %2d  cost %3d\n", worker - 1, job - 1, cost[worker][job]);
        total += cost[worker][job];
    }
    printf("total cost %d\n", total);
    print_potentials("u", worker_potential, n);
    print_potentials("v", job_potential, n);
    return 0;
}
