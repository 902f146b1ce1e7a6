/* cli_viz_html.c: DIR/index.html of `mlpviz visualize`, one page that shows the run: the
 * labelled grid, a card per image with its report row, the ascent (a player over the saved
 * frames, the filmstrip and GIFs without scripts), the objective per step and the command.
 * Images are referenced by relative path and the data is inline: the page opens from the
 * folder, with no server and no network. */
#include <stdlib.h>
#include <string.h>

#include "cli_html.h"
#include "cli_viz.h"

/* An image of the page: its file, the size it is stored at (the browser test checks that
 * every image loads at this natural size) and the size it is shown at. */
static void image_tag(FILE *out, const char *file, int w, int h, int shown_w, int shown_h,
                      const char *cls, const char *alt)
{
    fprintf(out, "<img class=\"%s\" src=\"", cls);
    html_url(out, file);
    fprintf(out, "\" data-w=\"%d\" data-h=\"%d\" width=\"%d\" height=\"%d\" alt=\"", w, h,
            shown_w, shown_h);
    html_text(out, alt);
    fputs("\">", out);
}

static void grid_section(FILE *out, const viz_output *v)
{
    fputs("<h2>Grid</h2>\n<p>", out);
    /* grid.png's size depends on its labels: the test reads it from the PNG, not from here */
    fputs("<img class=\"grid\" src=\"grid.png\" alt=\"every image, labelled\">", out);
    if (v->o->gif && v->n_frames)
        fputs("\n<noscript><img class=\"grid-gif\" src=\"grid.gif\" "
              "alt=\"the ascent of every image\"></noscript>", out);
    fputs("</p>\n", out);
    if (v->o->search)
        fprintf(out, "<h2>Search</h2>\n<p>The %d settings tried (<a href=\"search.csv\">"
                     "search.csv</a>; the winner, drawn here, in <a href=\"preset.txt\">"
                     "preset.txt</a>):</p>\n<p><img class=\"grid\" src=\"search.png\" "
                     "alt=\"every setting tried\"></p>\n", v->o->search);
}

/* Row r's card: the final image at its written size, the frame the player shows, and the
 * numbers of its report row. */
static void card(FILE *out, const viz_output *v, int r)
{
    const mv_model *m = v->m;
    const int s = v->o->scale, W = m->width * s, H = m->height * s;
    const mv_viz_result *x = &v->results[r];
    char name[64], file[1024];
    const char *target = viz_target_name(v, r, name, sizeof name);
    fprintf(out, "<figure class=\"card\" data-row=\"%d\">\n", r);
    viz_image_name(v, r, "png", file, sizeof file);
    image_tag(out, file, W, H, W, H, "final", target);
    if (v->n_frames) {
        char prefix[1024];
        viz_frame_name(v, r, v->frame_steps[0], file, sizeof file);
        fputc('\n', out);
        image_tag(out, file, m->width, m->height, W, H, "frame", target);
        viz_frame_name(v, r, 0, prefix, sizeof prefix);
        prefix[strlen(prefix) - strlen("00000.png")] = 0; /* the script adds the step */
        fputs("<span class=\"frame-prefix\" hidden data-prefix=\"", out);
        html_url(out, prefix);
        fputs("\"></span>", out);
    }
    if (v->o->gif && v->n_frames) {
        viz_image_name(v, r, "gif", file, sizeof file);
        fputs("\n<noscript>", out);
        const int gs = v->o->gif_scale; /* shown at the size of the PNGs */
        image_tag(out, file, m->width * gs, m->height * gs, W, H, "gif", target);
        fputs("</noscript>", out);
    }
    fputs("\n<figcaption><b>", out);
    html_text(out, target);
    fprintf(out, "</b> seed %d<br>score ", r / v->n_targets);
    html_number(out, x->score);
    fputs(", p ", out);
    html_number(out, x->prob);
    fputs(", margin ", out);
    html_number(out, x->margin);
    if (viz_judge_prob(v, r) >= 0) {
        fputs(", judge ", out);
        html_number(out, viz_judge_prob(v, r));
    }
    fprintf(out, ", first at top: step %d</figcaption>\n</figure>\n", x->first_top_step);
}

static void table_row(FILE *out, const viz_output *v, int r)
{
    const mv_viz_result *x = &v->results[r];
    char name[64];
    fputs("<tr><td>", out);
    html_text(out, viz_target_name(v, r, name, sizeof name));
    fprintf(out, "</td><td>%d</td>", r / v->n_targets);
    const double values[] = {x->score, x->logit, x->prob, x->margin};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        fputs("<td>", out);
        html_number(out, values[i]);
        fputs("</td>", out);
    }
    fputs("<td>", out);
    html_text(out, v->m->class_names[x->top_class]);
    fprintf(out, "</td><td>%d</td><td>", x->first_top_step);
    if (viz_judge_prob(v, r) >= 0)
        html_number(out, viz_judge_prob(v, r));
    fputs("</td></tr>\n", out);
}

static void images_section(FILE *out, const viz_output *v)
{
    fputs("<h2>Images</h2>\n<div class=\"cards\">\n", out);
    for (int r = 0; r < v->rows; r++) card(out, v, r);
    fputs("</div>\n<h2>Report</h2>\n<table class=\"report\">\n<thead><tr><th>target</th>"
          "<th>seed</th><th>score</th><th>logit</th><th>probability</th><th>margin</th>"
          "<th>top class</th><th>first step at the top</th><th>judge's probability</th></tr>"
          "</thead>\n<tbody>\n", out);
    for (int r = 0; r < v->rows; r++) table_row(out, v, r);
    fputs("</tbody>\n</table>\n", out);
}

/* The player: hidden until its script runs, which then moves every card's frame image to
 * the slider's step (the steps inline: a page from file:// cannot fetch()). */
static const char *const player_script =
    "<script>\n"
    "(function () {\n"
    "  var player = document.getElementById('player'), slider = document.getElementById('step');\n"
    "  var label = document.getElementById('step-label'), button = document.getElementById('play');\n"
    "  var steps = JSON.parse(player.getAttribute('data-steps')), timer = null;\n"
    "  var frames = document.querySelectorAll('figure.card');\n"
    "  function show(i) {\n"
    "    label.textContent = 'step ' + steps[i];\n"
    "    frames.forEach(function (card) {\n"
    "      var prefix = card.querySelector('.frame-prefix'), img = card.querySelector('img.frame');\n"
    "      if (prefix && img) img.src = prefix.getAttribute('data-prefix') +\n"
    "        String(steps[i]).padStart(5, '0') + '.png';\n"
    "    });\n"
    "  }\n"
    "  function toggle() {\n"
    "    if (timer) { clearInterval(timer); timer = null; button.textContent = 'play'; return; }\n"
    "    button.textContent = 'pause';\n"
    "    timer = setInterval(function () {\n"
    "      slider.value = (Number(slider.value) + 1) % steps.length; show(Number(slider.value));\n"
    "    }, 120);\n"
    "  }\n"
    "  slider.addEventListener('input', function () { show(Number(slider.value)); });\n"
    "  button.addEventListener('click', toggle);\n"
    "  player.hidden = false;\n"
    "  show(0);\n"
    "  toggle();\n"
    "})();\n"
    "</script>\n";

static void ascent_section(FILE *out, const viz_output *v)
{
    fputs("<h2>Ascent</h2>\n", out);
    if (v->n_frames) {
        fprintf(out, "<div id=\"player\" class=\"player\" hidden data-steps=\"[");
        for (int f = 0; f < v->n_frames; f++) fprintf(out, "%s%d", f ? "," : "", v->frame_steps[f]);
        fprintf(out, "]\">\n<button id=\"play\" type=\"button\">play</button>\n"
                     "<input id=\"step\" type=\"range\" min=\"0\" max=\"%d\" value=\"0\">\n"
                     "<span id=\"step-label\">step %d</span> (the frame in each card above)\n"
                     "</div>\n<p><img class=\"filmstrip\" src=\"filmstrip.png\" "
                     "alt=\"the saved steps of every image\"></p>\n",
                v->n_frames - 1, v->frame_steps[0]);
    } else {
        fputs("<p>No frames were saved (<code>--frames N</code> saves every N-th step).</p>\n", out);
    }
    if (!v->n_trace)
        return;
    const char **names = calloc((size_t)v->rows, sizeof *names);
    char (*buf)[64] = calloc((size_t)v->rows, sizeof *buf);
    double *xs = malloc(sizeof *xs * (size_t)v->n_trace);
    double *ys = malloc(sizeof *ys * (size_t)v->n_trace * v->rows);
    const double **series = calloc((size_t)v->rows, sizeof *series);
    if (names && buf && xs && ys && series) {
        for (int r = 0; r < v->rows; r++) {
            char target[64];
            snprintf(buf[r], 64, "%s/%d", viz_target_name(v, r, target, sizeof target),
                     r / v->n_targets);
            names[r] = buf[r];
            series[r] = ys + (size_t)r * v->n_trace;
            for (int i = 0; i < v->n_trace; i++)
                ys[(size_t)r * v->n_trace + i] = v->trace[(size_t)i * v->rows + r];
        }
        for (int i = 0; i < v->n_trace; i++) xs[i] = v->trace_steps[i];
        const html_chart chart = {.title = "the objective per step (target/seed)",
                                  .x_label = "step", .n_series = v->rows,
                                  .n_points = v->n_trace, .names = names, .xs = xs, .ys = series};
        html_svg_chart(out, &chart);
    }
    free(names);
    free(buf);
    free(xs);
    free(ys);
    free(series);
}

int viz_write_page(const viz_output *v)
{
    html_page page;
    char title[4200];
    snprintf(title, sizeof title, "mlpviz visualize %s", v->o->model_path);
    if (html_begin(&page, title)) {
        cli_error("visualize", "out of memory");
        return MV_EXIT_FAIL;
    }
    FILE *out = page.out;
    grid_section(out, v);
    images_section(out, v);
    ascent_section(out, v);
    char extra[1400];
    snprintf(extra, sizeof extra, "seed %llu; settings %s%s%s",
             (unsigned long long)v->o->viz.seed, v->flags, v->judge ? "; judge " : "",
             v->judge ? v->o->judge_path : "");
    html_run_section(out, v->argc, v->argv, v->m, extra);
    html_sibling_links(out, v->o->out, "index.html");
    if (v->n_frames)
        fputs(player_script, out);
    char path[4096];
    snprintf(path, sizeof path, "%s/index.html", v->o->out);
    return html_finish(&page, path, "visualize");
}
