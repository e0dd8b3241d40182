/* Checks a screenshot of a loopwarden-audit --html page (test_html.sh):
 * the PNG has the window's size, is not blank, and shows the trip marker
 * (#d50000) and the loop's highlight (#ffd54f) in the text. Reads the PNG
 * with libpng's simplified API. Prints what it counted.
 * usage: png_check FILE WIDTH HEIGHT; exit 0 when all hold, 1 when not,
 * 2 when the file is not a PNG. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

/* Pixels within <tol> of (r, g, b) on every channel. */
static size_t count_color(const unsigned char *px, size_t n, int r, int g, int b, int tol)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = px + 3 * i;
		k += abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol;
	}
	return k;
}

int main(int argc, char **argv)
{
	png_image img;
	unsigned char *px = NULL;
	int rc = 2;

	if (argc != 4) {
		fprintf(stderr, "usage: png_check FILE WIDTH HEIGHT\n");
		return 2;
	}
	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_file(&img, argv[1])) {
		fprintf(stderr, "%s: %s\n", argv[1], img.message);
		return 2;
	}
	img.format = PNG_FORMAT_RGB;
	px = malloc(PNG_IMAGE_SIZE(img));
	if (!px || !png_image_finish_read(&img, NULL, px, 0, NULL)) {
		fprintf(stderr, "%s: %s\n", argv[1], px ? img.message : "out of memory");
		goto out;
	}
	size_t n = (size_t)img.width * img.height;
	size_t ink = n - count_color(px, n, 255, 255, 255, 8);
	size_t red = count_color(px, n, 0xd5, 0x00, 0x00, 24);
	size_t yellow = count_color(px, n, 0xff, 0xd5, 0x4f, 24);
	printf("%s: %ux%u, %zu non-white pixels (%.1f%%), %zu trip-marker red, %zu loop-highlight "
	       "yellow\n", argv[1], img.width, img.height, ink, 100.0 * (double)ink / (double)n, red,
	       yellow);
	rc = 0;
	if (img.width != (unsigned)atoi(argv[2]) || img.height != (unsigned)atoi(argv[3])) {
		printf("FAIL: the screenshot is not %sx%s\n", argv[2], argv[3]);
		rc = 1;
	}
	if (ink < n / 50) {
		printf("FAIL: the page is (nearly) blank\n");
		rc = 1;
	}
	if (red < 100) {
		printf("FAIL: no trip marker\n");
		rc = 1;
	}
	if (yellow < 1000) {
		printf("FAIL: no highlighted loop\n");
		rc = 1;
	}
out:
	png_image_free(&img);
	free(px);
	return rc;
}
