/* long_addition: adds two big non-negative decimal numbers read from the input,
 * digit by digit with a carry, the way it is done on paper. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Longest number accepted, in digits. */
#define MAX_DIGITS 120
/* scanf's conversion for one word of at most MAX_DIGITS characters. */
#define WORD_FORMAT "%120s"

/* Reads one number; returns its digit count, or -1 if the word is not a number. */
static int read_number(char *digits) {
    if (scanf(WORD_FORMAT, digits) != 1)
        return -1;
    int length = (int)strlen(digits);
    for (int i = 0; i < length; i++)
        if (!isdigit(digits[i]))
            return -1;
    return length;
}

/* The digit at place `place` (0 = units) of a number stored most significant first. */
static int digit_at(const char *digits, int length, int place) {
    return place < length ? digits[length - 1 - place] - '0' : 0;
}

/* Writes a + b into sum (most significant first, no leading zeros) and returns its length. */
static int add_numbers(const char *a, int a_length, const char *b, int b_length, char *sum) {
    char reversed[MAX_DIGITS + 2];
    int places = a_length > b_length ? a_length : b_length;
    int carry = 0;
    for (int place = 0; place < places; place++) {
        int column = digit_at(a, a_length, place) + digit_at(b, b_length, place) + carry;
        reversed[place] = (char)('0' + column % 10);
        carry = column / 10;
    }
    if (carry)
        reversed[places++] = '1';
    while (places > 1 && reversed[places - 1] == '0')
        places--;
    for (int i = 0; i < places; i++)
        sum[i] = reversed[places - 1 - i];
    sum[places] = 0;
    return places;
}

int main(void) {
    char a[MAX_DIGITS + 1], b[MAX_DIGITS + 1], sum[MAX_DIGITS + 2];
    int a_length = read_number(a);
    int b_length = read_number(b);
    if (a_length < 0 || b_length < 0) {
        puts("expected two non-negative decimal numbers");
        return 1;
    }
    int sum_length = add_numbers(a, a_length, b, b_length, sum);
    int width = sum_length + 1;
    printf("  %*s\n", width - 1, a);
    printf("+ %*s\n", width - 1, b);
    printf("= %*s\n", width - 1, sum);
    return 0;
}
