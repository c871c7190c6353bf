/** A series one PromQL expression selects, and the labels the expression names for it. */
export interface SeriesReference {
  /** As written: a histogram's `_bucket`, `_sum` or `_count` included. */
  name: string;
  /** The labels of its selector's matchers. */
  matchers: string[];
  /** Every aggregation around it, innermost first; one without a clause is `by` no labels. */
  aggregations: Aggregation[];
}

export interface Aggregation {
  grouping: 'by' | 'without';
  labels: string[];
}

export interface PromqlReferences {
  series: SeriesReference[];
  /** Labels of `on`/`ignoring`/`group_left`/`group_right`, which both sides of a match must carry. */
  matchingLabels: string[];
}

const AGGREGATIONS = new Set(
  `sum min max avg group stddev stdvar count count_values
  bottomk topk quantile limitk limit_ratio`.split(/\s+/),
);

/** Prometheus 3's functions: a misspelt one is refused here instead of only by Prometheus. */
const FUNCTIONS = new Set(
  `abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max
  clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv
  double_exponential_smoothing exp floor histogram_avg histogram_count histogram_fraction histogram_quantile
  histogram_stddev histogram_stdvar histogram_sum hour idelta increase info irate label_join label_replace
  last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi predict_linear
  present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_by_label
  sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp
  vector year`.split(/\s+/),
);

const GROUPING = new Set(['by', 'without']);
const MATCHING = new Set(['on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2', 'inf', 'nan']);

/**
 * Whitespace and strings (label values, where Grafana's `$model` lives) first; range and subquery brackets
 * whole, since their durations (`[$__rate_interval]`) name nothing; then names, numbers and operators.
 * Anything else (`@`, a bare `$variable`) is refused rather than guessed at.
 */
const TOKEN =
  /(\s+)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)|(\[[^\]]*\])|([a-zA-Z_:][a-zA-Z0-9_:]*)|([0-9.][0-9a-zA-Z_.]*)|(=~|!~|!=|==|>=|<=|[(){},=<>+\-*/%^])/y;

type Token = { kind: 'string' | 'range' | 'name' | 'number' | 'operator'; text: string };
const KINDS = ['string', 'range', 'name', 'number', 'operator'] as const;

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < expr.length) {
    const at = TOKEN.lastIndex;
    const match = TOKEN.exec(expr);
    if (!match) throw new Error(`unexpected ${JSON.stringify(expr[at])} at ${at} in ${expr}`);
    const group = match.slice(2).findIndex((text) => text !== undefined);
    if (group >= 0) tokens.push({ kind: KINDS[group]!, text: match[group + 2]! });
  }
  return tokens;
}

/** For each opening `(` or `{`, the index of the token closing it; refuses unbalanced input. */
function matchBrackets(tokens: Token[]): Map<number, number> {
  const closing = new Map<number, number>();
  const open: number[] = [];
  tokens.forEach((token, index) => {
    if (token.text === '(' || token.text === '{') open.push(index);
    if (token.text !== ')' && token.text !== '}') return;
    const start = open.pop();
    if (start === undefined || tokens[start]!.text !== (token.text === ')' ? '(' : '{')) {
      throw new Error(`unbalanced ${token.text} at token ${index}`);
    }
    closing.set(start, index);
  });
  if (open.length > 0) throw new Error('unclosed bracket');
  return closing;
}

/** The label names of a `(a, b)` list or a `{a="x", b=~"y"}` selector starting at `start`. */
function labelsIn(tokens: Token[], start: number, end: number): string[] {
  return tokens.slice(start + 1, end).flatMap((token, offset, inner) => {
    if (token.kind !== 'name') return [];
    const next = inner[offset + 1]?.text;
    return tokens[start]!.text === '(' || ['=', '!=', '=~', '!~'].includes(next ?? '') ? [token.text] : [];
  });
}

/**
 * The series a PromQL expression selects and the labels it names. A deliberately small reading of the
 * language, enough for dashboard queries: a name followed by `(` is a function (unknown ones throw),
 * one in the aggregation or keyword lists is that, any other name is a series; each series carries the
 * aggregations whose argument holds it.
 */
export function promqlReferences(expr: string): PromqlReferences {
  const tokens = tokenize(expr);
  const closing = matchBrackets(tokens);
  const series: { name: string; matchers: string[]; at: number }[] = [];
  const scopes: (Aggregation & { from: number; to: number })[] = [];
  const matchingLabels: string[] = [];
  const listAfter = (index: number) => {
    const end = tokens[index + 1]?.text === '(' ? closing.get(index + 1)! : index;
    return { labels: end === index ? [] : labelsIn(tokens, index + 1, end), end };
  };
  const groupingAt = (index: number): (Aggregation & { end: number }) | undefined => {
    const keyword = tokens[index]?.text;
    return keyword === 'by' || keyword === 'without' ? { grouping: keyword, ...listAfter(index) } : undefined;
  };

  for (let index = 0; index < tokens.length; index++) {
    const { kind, text } = tokens[index]!;
    const next = tokens[index + 1]?.text;
    if (kind === 'operator' && text === '{') throw new Error(`a selector without a metric name in ${expr}`);
    if (kind !== 'name') continue;
    if (AGGREGATIONS.has(text)) {
      const before = groupingAt(index + 1);
      const from = (before?.end ?? index) + 1;
      const to = closing.get(from);
      if (to === undefined) throw new Error(`${text} without an argument in ${expr}`);
      const clause: Aggregation = before ?? groupingAt(to + 1) ?? { grouping: 'by', labels: [] };
      scopes.push({ from, to, grouping: clause.grouping, labels: clause.labels });
    } else if (GROUPING.has(text) || MATCHING.has(text)) {
      const list = listAfter(index);
      if (MATCHING.has(text)) matchingLabels.push(...list.labels);
      index = list.end;
    } else if (next === '(') {
      if (!FUNCTIONS.has(text)) throw new Error(`${text} is not a PromQL function (in ${expr})`);
    } else if (!KEYWORDS.has(text)) {
      const end = next === '{' ? closing.get(index + 1)! : index;
      series.push({ name: text, matchers: end === index ? [] : labelsIn(tokens, index + 1, end), at: index });
      index = end;
    }
  }
  return {
    series: series.map(({ name, matchers, at }) => ({
      name,
      matchers,
      aggregations: scopes
        .filter((scope) => scope.from < at && at < scope.to)
        .reverse()
        .map(({ grouping, labels }) => ({ grouping, labels })),
    })),
    matchingLabels,
  };
}
