/* sudoku: reads a puzzle (81 cells row by row; digits 1-9, '0' or '.' for a
 * blank; other bytes are ignored) and solves it.
 *
 * Each row, column and box keeps a bitmask of the digits it already holds, so
 * the candidates of a cell are the digits in none of its three masks. The solver
 * first fills every cell that has a single candidate ("naked singles") and every
 * digit that fits in only one cell of a row, column or box ("hidden singles")
 * until nothing changes, then guesses a digit in the cell with the fewest
 * candidates and recurses, undoing its placements when a guess fails. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define SIZE 9
#define CELLS 81
#define ALL_DIGITS 0x1FF /* bit d-1 set = digit d */
#define UNITS 27         /* 9 rows, 9 columns, 9 boxes */

struct board {
    char digit[CELLS]; /* 0 = blank */
    int row_used[SIZE], column_used[SIZE], box_used[SIZE];
    /* Cells filled so far, in order, so that a failed guess can be undone. */
    char placed[CELLS];
    int placed_count;
};

/* Row, column and box of each cell, and the cells of each unit: unit_cells[u]
 * lists row u (0-8), column u - 9 (9-17) or box u - 18 (18-26). Tables built
 * once, so the inner loops do no division. */
static char cell_row[CELLS], cell_column[CELLS], cell_box[CELLS];
static char unit_cells[UNITS][SIZE];

static void build_tables(void) {
    for (int cell = 0; cell < CELLS; cell++) {
        int row = cell / SIZE, column = cell % SIZE, box = row / 3 * 3 + column / 3;
        cell_row[cell] = (char)row;
        cell_column[cell] = (char)column;
        cell_box[cell] = (char)box;
        unit_cells[row][column] = (char)cell;
        unit_cells[SIZE + column][row] = (char)cell;
        unit_cells[2 * SIZE + box][row % 3 * 3 + column % 3] = (char)cell;
    }
}

static int row_of(int cell) { return cell_row[cell]; }
static int column_of(int cell) { return cell_column[cell]; }
static int box_of(int cell) { return cell_box[cell]; }

static int candidates(const struct board *board, int cell) {
    int used = board->row_used[row_of(cell)] | board->column_used[column_of(cell)] | board->box_used[box_of(cell)];
    return ALL_DIGITS & ~used;
}

static void place(struct board *board, int cell, int digit) {
    int bit = 1 << (digit - 1);
    board->digit[cell] = (char)digit;
    board->row_used[row_of(cell)] |= bit;
    board->column_used[column_of(cell)] |= bit;
    board->box_used[box_of(cell)] |= bit;
    board->placed[board->placed_count++] = (char)cell;
}

/* Clears every placement made after the first `keep` ones. */
static void undo_to(struct board *board, int keep) {
    while (board->placed_count > keep) {
        int cell = board->placed[--board->placed_count];
        int bit = 1 << (board->digit[cell] - 1);
        board->digit[cell] = 0;
        board->row_used[row_of(cell)] &= ~bit;
        board->column_used[column_of(cell)] &= ~bit;
        board->box_used[box_of(cell)] &= ~bit;
    }
}

static int lowest_digit(int mask) { return __builtin_ctz(mask) + 1; }

/* Places every naked single in one pass over the cells, and records in
 * mask[cell] the candidates each blank cell had when it was visited (a superset
 * of its candidates once the pass ends). Returns -1 on a contradiction (a blank
 * cell without candidates), else how many digits it placed. *best_cell becomes
 * the blank multi-candidate cell with the fewest candidates (-1 if none). */
static int place_naked_singles(struct board *board, int *mask, int *best_cell) {
    int placed = 0, best_count = SIZE + 1;
    *best_cell = -1;
    for (int cell = 0; cell < CELLS; cell++) {
        if (board->digit[cell])
            continue;
        mask[cell] = candidates(board, cell);
        int count = __builtin_popcount(mask[cell]);
        if (count == 0)
            return -1;
        if (count == 1) {
            place(board, cell, lowest_digit(mask[cell]));
            placed++;
        } else if (count < best_count) {
            best_count = count;
            *best_cell = cell;
        }
    }
    return placed;
}

/* Places the digit `bit` in the one blank cell of `unit` that still takes it.
 * Returns false if no cell does (a contradiction). */
static bool place_in_unit(struct board *board, int unit, int bit) {
    for (int k = 0; k < SIZE; k++) {
        int cell = unit_cells[unit][k];
        if (!board->digit[cell] && (candidates(board, cell) & bit)) {
            place(board, cell, lowest_digit(bit));
            return true;
        }
    }
    return false;
}

/* Places the digits that fit in exactly one cell of a unit, judged from the
 * masks of the last naked-singles pass; each placement is checked against the
 * current board. Returns -1 on a contradiction (a missing digit that fits
 * nowhere in a unit), else how many it placed. */
static int place_hidden_singles(struct board *board, const int *mask) {
    int placed = 0;
    for (int unit = 0; unit < UNITS; unit++) {
        int fits_once = 0, fits_twice = 0, present = 0;
        for (int k = 0; k < SIZE; k++) {
            int cell = unit_cells[unit][k];
            if (board->digit[cell]) {
                present |= 1 << (board->digit[cell] - 1);
            } else {
                fits_twice |= fits_once & mask[cell];
                fits_once |= mask[cell];
            }
        }
        if ((fits_once | present) != ALL_DIGITS)
            return -1;
        for (int single = fits_once & ~fits_twice & ~present; single; single &= single - 1) {
            if (!place_in_unit(board, unit, single & -single))
                return -1;
            placed++;
        }
    }
    return placed;
}

/* Applies both rules until neither places a digit. Returns false on a
 * contradiction; otherwise *best_cell is the blank cell with the fewest
 * candidates, or -1 when the board is full. */
static bool propagate(struct board *board, int *best_cell) {
    /* Static, not on the stack: propagate never runs inside itself, and the
     * small C stack could not hold a copy per level of the search. */
    static int mask[CELLS];
    for (;;) {
        int naked = place_naked_singles(board, mask, best_cell);
        if (naked < 0)
            return false;
        if (naked > 0)
            continue;
        int hidden = place_hidden_singles(board, mask);
        if (hidden < 0)
            return false;
        if (hidden == 0)
            return true;
    }
}

static bool solve(struct board *board) {
    int start = board->placed_count;
    int cell;
    if (!propagate(board, &cell)) {
        undo_to(board, start);
        return false;
    }
    if (cell < 0)
        return true;
    int guess_start = board->placed_count;
    for (int mask = candidates(board, cell); mask; mask &= mask - 1) {
        place(board, cell, lowest_digit(mask));
        if (solve(board))
            return true;
        undo_to(board, guess_start);
    }
    undo_to(board, start);
    return false;
}

/* Reads 81 cells; returns false if the input ends early or clues clash. */
static bool read_board(struct board *board) {
    memset(board, 0, sizeof *board);
    int cell = 0;
    while (cell < CELLS) {
        int c = getchar();
        if (c == EOF)
            return false;
        if (c == '0' || c == '.') {
            cell++;
        } else if (c >= '1' && c <= '9') {
            if (!(candidates(board, cell) & (1 << (c - '1'))))
                return false;
            place(board, cell++, c - '0');
        }
    }
    return true;
}

static void print_board(const struct board *board) {
    for (int row = 0; row < SIZE; row++) {
        if (row && row % 3 == 0)
            puts("------+-------+------");
        for (int column = 0; column < SIZE; column++) {
            if (column && column % 3 == 0)
                fputs("| ", stdout);
            int digit = board->digit[row * SIZE + column];
            putchar(digit ? '0' + digit : '.');
            putchar(column + 1 < SIZE ? ' ' : '\n');
        }
    }
}

int main(void) {
    static struct board board;
    build_tables();
    if (!read_board(&board)) {
        puts("invalid puzzle");
        return 1;
    }
    if (!solve(&board)) {
        puts("no solution");
        return 1;
    }
    print_board(&board);
    return 0;
}
