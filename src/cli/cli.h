/* cli.h: shared helpers of the mlpviz command-line subcommands. */
#ifndef MV_CLI_H
#define MV_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "internal.h" /* the library's file plumbing and mv_index_of_max */
#include "mlpviz.h"

/* Exit statuses: 0 success, 1 the work failed (a check, a file), 2 the command line is wrong. */
enum { MV_EXIT_OK = 0, MV_EXIT_FAIL = 1, MV_EXIT_USAGE = 2 };
/* What a command's argument parser returns after printing --help: not an exit status, the
 * command then ends with MV_EXIT_OK. */
enum { CLI_HELP_SHOWN = -1 };

/* Prints "mlpviz CMD: message" on stderr; in a job of several processes (after
 * cli_job_start) keeps the first message for cli_job_agree instead. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A command that splits its work across the processes of an MPI job calls cli_job_start
 * first. In a job of several processes its errors are then held, and every process calls
 * cli_job_agree at the same points, with its exit status so far, before the next collective
 * call: when a process has failed, rank 0 alone prints "mlpviz CMD: rank R: reason" for the
 * lowest failing rank, and every process gets a failing status (its own, else
 * MV_EXIT_FAIL), once; later calls return it without communicating. Alone, errors print as
 * they come and cli_job_agree returns rc. */
void cli_job_start(void);
int cli_job_agree(const char *cmd, int rc);
/* Errors print as they come again (train: after its setup, the library agrees on its own
 * failures and every process returns the same one; only rank 0's stderr is open). */
void cli_job_end(void);

/* Strict number parsing for option values: the whole text must be a number in [lo, hi].
 * On failure they print an error naming the option and return MV_EXIT_USAGE (else 0). */
int cli_parse_int(const char *cmd, const char *option, const char *text, long lo, long hi,
                  long *out);
int cli_parse_double(const char *cmd, const char *option, const char *text, double lo,
                     double hi, double *out);
int cli_parse_u64(const char *cmd, const char *option, const char *text, uint64_t *out);

/* A table of numeric options, one row each instead of one switch case each: the getopt code,
 * the long name (for messages), the kind of the field, its bounds (unused for CLI_U64),
 * and where the field lies in the struct the table fills (offsetof). */
typedef enum { CLI_INT, CLI_FLOAT, CLI_DOUBLE, CLI_U64 } cli_number_kind;
typedef struct {
    int code;
    const char *name;
    cli_number_kind kind;
    double lo, hi;
    size_t offset;
} cli_number_option;

/* A row for field (of struct type): its kind follows from the field's type, so that a row can
 * never write a double into an int; a field of another type does not compile. */
#define CLI_NUMBER(code, name, lo, hi, type, field)                                            \
    {(code), (name),                                                                          \
     _Generic(((type *)0)->field, int: CLI_INT, float: CLI_FLOAT, double: CLI_DOUBLE,          \
              uint64_t: CLI_U64),                                                             \
     (lo), (hi), offsetof(type, field)}

/* A table and its row count, the way cli_parse_number_option takes them. */
#define CLI_TABLE(rows) (rows), sizeof(rows) / sizeof *(rows)

/* Returned by cli_parse_number_option when no row of the table has the code. */
enum { CLI_NOT_IN_TABLE = -1 };

/* Parses arg into the field of target that the row of options [count] with this code names.
 * Returns MV_EXIT_OK, MV_EXIT_USAGE on a bad value (the message printed), or
 * CLI_NOT_IN_TABLE. */
int cli_parse_number_option(const char *cmd, const cli_number_option *options, size_t count,
                            int code, const char *arg, void *target);

/* The exit status for a library parser's verdict on an option's value: MV_EXIT_OK, or
 * MV_EXIT_USAGE with the library's message printed (after "--option: " unless option is
 * NULL). */
int cli_check_value(const char *cmd, const char *option, mv_status status);

/* "relu" for every hidden layer of arch, or "relu,tanh,..." one per hidden layer. Returns
 * the exit status (MV_EXIT_USAGE with the message printed). */
int cli_parse_acts(const char *cmd, const char *text, mv_arch *arch);

/* Splits --names "a,b,c" into *names (malloc'd strings, *count of them; free with
 * cli_free_class_names). An empty name is refused: it would shift every later label.
 * Prints the error and returns the exit status. */
int cli_parse_class_names(const char *cmd, const char *text, char ***names, int *count);
void cli_free_class_names(char **names, int count);

/* Loads --data: an image folder, or an IDX image file (labels from `labels`, or from the
 * images path with "images-idx3" replaced by "labels-idx1"). IDX classes are named by
 * `names` (a comma list), else by default_names[0..n_default), else "0".."largest label".
 * Prints the error and returns the exit status (0 on success). */
int cli_load_data(const char *cmd, const char *path, const char *labels, const char *names,
                  const char *const *default_names, int n_default,
                  const mv_load_options *options, mv_dataset **out);

/* Creates a directory (one level) when it is missing. */
void cli_ensure_dir(const char *dir);
/* Creates the directory of an output path such as out/x.png when it is missing. */
void cli_ensure_parent(const char *path);

/* Loads the command's MODEL (mlpviz or ONNX, with the hint options), printing the library's
 * message (which names the file) on failure; returns the exit status. */
int cli_load_model(const char *cmd, const char *path, mv_model **model);
/* The same for a second model (a judge, a checkpoint): the hint options are not for it. */
int cli_load_other_model(const char *cmd, const char *path, mv_model **model);

/* The ONNX hint options (cli_hints.c): cli_take_hints removes them from argv (argc updated)
 * before a command parses the rest; returns the exit status of a bad value. */
int cli_take_hints(const char *cmd, int *argc, char **argv);
const mv_model_hints *cli_hints(void);
/* The hint options as given (" --mean 0.5 ..."), "" when none: for a recorded command. */
const char *cli_hints_text(void);
void cli_hints_help(FILE *out);
void cli_hints_free(void);

/* Writes text as a quoted JSON string that always parses: quotes, backslashes and control
 * characters escaped, invalid UTF-8 replaced by U+FFFD. */
void cli_json_string(FILE *out, const char *text);

/* Unknown option / missing value reporting for getopt_long loops. */
int cli_bad_option(const char *cmd, int opt, const char *arg0);

/* The subcommands. argv[0] is the subcommand's name. */
int cmd_gradcheck(int argc, char **argv); /* cli_gradcheck.c */
int cmd_convert(int argc, char **argv);   /* cli_convert.c */
int cmd_info(int argc, char **argv);      /* cli_model.c */
int cmd_export(int argc, char **argv);    /* cli_model.c */
int cmd_train(int argc, char **argv);     /* cli_train.c */
int cmd_eval(int argc, char **argv);      /* cli_eval.c */
int cmd_predict(int argc, char **argv);   /* cli_eval.c */
int cmd_grad(int argc, char **argv);      /* cli_eval.c */
int cmd_visualize(int argc, char **argv); /* cli_visualize.c */
int cmd_saliency(int argc, char **argv);  /* cli_eval.c */

#endif
