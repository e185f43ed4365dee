/* switch_machine: switch statements of every shape clang lowers, driven by a
 * little state machine. A lexer walks a fixed arithmetic text through a dense
 * switch on its state (clang: br_table), classifies characters with a sparse
 * switch (compares), evaluates the tokens with a dense switch on the operator
 * that falls through, and names some sparse codes with a default. */
#include <stdio.h>

enum state { START, NUMBER, OPERATOR, SPACE, PAREN, DONE, ERROR };
enum kind { DIGIT, OP, BLANK, OPEN, CLOSE, END, OTHER };

static const char *const STATE_NAMES[] = {"start", "number", "operator", "space", "paren", "done", "error"};

/* Sparse case values: clang compares (or searches) rather than jumping through a table. */
static enum kind classify(int c) {
    switch (c) {
    case ' ':
    case '\t':
        return BLANK;
    case '+':
    case '-':
    case '*':
    case '/':
    case '%':
        return OP;
    case '(':
        return OPEN;
    case ')':
        return CLOSE;
    case 0:
        return END;
    default:
        return c >= '0' && c <= '9' ? DIGIT : OTHER;
    }
}

/* Dense on the state: one br_table. Returns the next state and counts transitions. */
static enum state step(enum state state, enum kind kind, int *numbers, int *operators) {
    switch (state) {
    case START:
    case SPACE:
    case PAREN:
    case OPERATOR:
        switch (kind) {
        case DIGIT:
            (*numbers)++;
            return NUMBER;
        case OP:
            (*operators)++;
            return OPERATOR;
        case BLANK:
            return SPACE;
        case OPEN:
        case CLOSE:
            return PAREN;
        case END:
            return DONE;
        default:
            return ERROR;
        }
    case NUMBER:
        if (kind == DIGIT)
            return NUMBER;
        if (kind == OP) {
            (*operators)++;
            return OPERATOR;
        }
        return kind == END ? DONE : kind == OTHER ? ERROR : kind == BLANK ? SPACE : PAREN;
    case DONE:
        return DONE;
    default:
        return ERROR;
    }
}

/* Dense with fallthrough: each level adds its own bonus and everything below it. */
static int bonus(int level) {
    int total = 0;
    switch (level) {
    case 6:
        total += 600;
        /* fall through */
    case 5:
        total += 50;
        /* fall through */
    case 4:
        total += 4;
        /* fall through */
    case 3:
    case 2:
        total += 2;
        /* fall through */
    case 1:
        total += 1;
        break;
    default:
        total = -1;
    }
    return total;
}

/* Very sparse values with a default. */
static const char *status_name(int code) {
    switch (code) {
    case 200:
        return "ok";
    case 301:
        return "moved";
    case 404:
        return "not found";
    case 500:
        return "server error";
    case 100000:
        return "huge";
    case -7:
        return "negative";
    default:
        return "unknown";
    }
}

static int apply(int op, int left, int right) {
    switch (op) {
    case '+':
        return left + right;
    case '-':
        return left - right;
    case '*':
        return left * right;
    case '/':
        return right ? left / right : 0;
    case '%':
        return right ? left % right : 0;
    default:
        return left;
    }
}

/* Runs the machine over one text; evaluates it left to right (no precedence). */
static void lex(const char *text) {
    int numbers = 0, operators = 0, value = 0, current = 0, pending = '+';
    enum state state = START;
    int visits[DONE + 2] = {0};
    for (const char *cursor = text;; cursor++) {
        enum kind kind = classify(*cursor);
        enum state next = step(state, kind, &numbers, &operators);
        visits[next]++;
        if (next == NUMBER)
            current = current * 10 + (*cursor - '0');
        if (state == NUMBER && next != NUMBER) {
            value = apply(pending, value, current);
            current = 0;
        }
        if (next == OPERATOR)
            pending = *cursor;
        state = next;
        if (state == DONE || state == ERROR)
            break;
    }
    printf("%-14s -> %-5s numbers=%d operators=%d value=%d visits", text, STATE_NAMES[state], numbers, operators,
           value);
    for (int s = START; s <= ERROR; s++)
        printf(" %d", visits[s]);
    putchar('\n');
}

int main(void) {
    lex("12+34*2");
    lex("7 - 10 % 4");
    lex("(8/3)*9");
    lex("5 + x");
    lex("");
    for (int level = -1; level <= 7; level++)
        printf("bonus(%d) = %d\n", level, bonus(level));
    static const int CODES[] = {200, 301, 302, 404, 500, 100000, -7, 0};
    for (int i = 0; i < (int)(sizeof CODES / sizeof CODES[0]); i++)
        printf("%d %s\n", CODES[i], status_name(CODES[i]));
    return 0;
}
