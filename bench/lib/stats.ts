export function median (values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const mid = v.length >> 1
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

export function max (values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x))
  return v.length === 0 ? NaN : Math.max(...v)
}

/** (max - min) / median, as a fraction: how far apart the repetitions were. */
export function spread (values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x))
  if (v.length < 2) return NaN
  return (Math.max(...v) - Math.min(...v)) / median(v)
}
