
#define NAXES 10
#define PRUNE_MIN_LINE 8
#define TOL_SCALE 9.094947017729282e-13

typedef unsigned int u32;
typedef long long i64;

__device__ __forceinline__ double min3(double a, double b, double c) {
    double m = a < b ? a : b;
    return m < c ? m : c;
}

__device__ __forceinline__ double max3(double a, double b, double c) {
    double m = a > b ? a : b;
    return m > c ? m : c;
}

/* Voxels 0..n-1 whose closed interval [i, i+1] meets [mn, mx]; empty when lo > hi. */
__device__ __forceinline__ void axis_range(double mn, double mx, int n, int* lo, int* hi) {
    if (mx < 0.0 || mn > (double)n) { *lo = 0; *hi = -1; return; }
    double l = ceil(mn) - 1.0;
    if (l < 0.0) l = 0.0;
    double h = floor(mx);
    if (h > (double)n - 1.0) h = (double)n - 1.0;
    *lo = (int)l;
    *hi = (int)h;
}

/* r = (ilo, ihi, jlo, jhi, klo, khi); false when the clamped AABB is empty. */
__device__ __forceinline__ bool triangle_aabb(const double* t, int D, int H, int W, int* r) {
    axis_range(min3(t[0], t[3], t[6]), max3(t[0], t[3], t[6]), W, r + 0, r + 1);
    axis_range(min3(t[1], t[4], t[7]), max3(t[1], t[4], t[7]), H, r + 2, r + 3);
    axis_range(min3(t[2], t[5], t[8]), max3(t[2], t[5], t[8]), D, r + 4, r + 5);
    return r[0] <= r[1] && r[2] <= r[3] && r[4] <= r[5];
}

/* CANONICAL, as cpu.triangle_axes. */
__device__ __forceinline__ void triangle_axes(const double* t, double* cx, double* cy, double* cz,
                              double* lo, double* hi) {
    double v0x = t[0], v0y = t[1], v0z = t[2];
    double v1x = t[3], v1y = t[4], v1z = t[5];
    double v2x = t[6], v2y = t[7], v2z = t[8];
    double e0x = v1x - v0x, e0y = v1y - v0y, e0z = v1z - v0z;
    double e1x = v2x - v1x, e1y = v2y - v1y, e1z = v2z - v1z;
    double e2x = v0x - v2x, e2y = v0y - v2y, e2z = v0z - v2z;
    cx[0] = e0y * e1z - e0z * e1y;
    cy[0] = e0z * e1x - e0x * e1z;
    cz[0] = e0x * e1y - e0y * e1x;
    cx[1] = 0.0; cy[1] = -e0z; cz[1] = e0y;
    cx[2] = 0.0; cy[2] = -e1z; cz[2] = e1y;
    cx[3] = 0.0; cy[3] = -e2z; cz[3] = e2y;
    cx[4] = e0z; cy[4] = 0.0; cz[4] = -e0x;
    cx[5] = e1z; cy[5] = 0.0; cz[5] = -e1x;
    cx[6] = e2z; cy[6] = 0.0; cz[6] = -e2x;
    cx[7] = -e0y; cy[7] = e0x; cz[7] = 0.0;
    cx[8] = -e1y; cy[8] = e1x; cz[8] = 0.0;
    cx[9] = -e2y; cy[9] = e2x; cz[9] = 0.0;
#pragma unroll
    for (int a = 0; a < NAXES; ++a) {
        double x = cx[a], y = cy[a], z = cz[a];
        double p0 = (x * v0x + y * v0y) + z * v0z;
        double p1 = (x * v1x + y * v1y) + z * v1z;
        double p2 = (x * v2x + y * v2y) + z * v2z;
        double pos = ((x > 0.0 ? x : 0.0) + (y > 0.0 ? y : 0.0)) + (z > 0.0 ? z : 0.0);
        double neg = ((x < 0.0 ? x : 0.0) + (y < 0.0 ? y : 0.0)) + (z < 0.0 ? z : 0.0);
        lo[a] = min3(p0, p1, p2) - pos;
        hi[a] = max3(p0, p1, p2) - neg;
    }
}

__device__ __forceinline__ int dominant_axis(double nx, double ny, double nz) {
    double ax = fabs(nx), ay = fabs(ny), az = fabs(nz);
    if (az > ax && az > ay) return 2;
    if (ay > ax) return 1;
    return 0;
}

/* As cpu._narrow. */
__device__ __forceinline__ void narrow(double c, double r, double lo, double hi, double n,
                                       double* flo, double* fhi) {
    double tol = (((fabs(c) * n + fabs(r)) + fabs(lo)) + fabs(hi)) * TOL_SCALE;
    double blo, bhi;
    if (c > 0.0) {
        blo = ((lo - tol) - r) / c;
        bhi = ((hi + tol) - r) / c;
    } else {
        blo = ((hi + tol) - r) / c;
        bhi = ((lo - tol) - r) / c;
    }
    double clo = ceil(blo), chi = floor(bhi);
    if (clo > *flo) *flo = clo;
    if (chi < *fhi) *fhi = chi;
}

__device__ __forceinline__ void line_geometry(const int* r, int d, int D, int H, int W,
                                              int* m0, int* m1, int* n, int* u0, int* u1,
                                              int* w0, int* w1) {
    if (d == 0) { *m0 = r[0]; *m1 = r[1]; *n = W; *u0 = r[2]; *u1 = r[3]; *w0 = r[4]; *w1 = r[5]; }
    else if (d == 1) { *m0 = r[2]; *m1 = r[3]; *n = H; *u0 = r[0]; *u1 = r[1]; *w0 = r[4]; *w1 = r[5]; }
    else { *m0 = r[4]; *m1 = r[5]; *n = D; *u0 = r[0]; *u1 = r[1]; *w0 = r[2]; *w1 = r[3]; }
}

/* Lines per triangle: the AABB's extent across the dominant axis of the normal. */
extern "C" __global__ void count_lines(const double* __restrict__ tris, i64 T,
                                       int D, int H, int W, i64* __restrict__ counts) {
    i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= T) return;
    const double* tri = tris + 9 * t;
    int r[6];
    if (!triangle_aabb(tri, D, H, W, r)) { counts[t] = 0; return; }
    double cx[NAXES], cy[NAXES], cz[NAXES], lo[NAXES], hi[NAXES];
    triangle_axes(tri, cx, cy, cz, lo, hi);
    int d = dominant_axis(cx[0], cy[0], cz[0]);
    int m0, m1, n, u0, u1, w0, w1;
    line_geometry(r, d, D, H, W, &m0, &m1, &n, &u0, &u1, &w0, &w1);
    counts[t] = (i64)(u1 - u0 + 1) * (i64)(w1 - w0 + 1);
}

/* The voxels of one line along DA (a template parameter, so that every array index below is
   a compile-time constant and the arrays live in registers). Components along the line (cd)
   and along the other two axes in x, y, z order (cu, cw); CANONICAL per voxel:
   q = cd*m + (cu*u + cw*w), as cpu._triangle_lines. Axes 1-3 are x cross the edges, 4-6 y
   cross, 7-9 z cross: the family of DA has no component along the line and is tested once;
   the normal and the six others per voxel. */
template <int DA>
__device__ __forceinline__ void surface_line(const double* cx, const double* cy, const double* cz,
                                             const double* lo, const double* hi,
                                             int m0, int m1, int n, int u, int w,
                                             int H, int WW, u32* grid) {
    const double* cd = DA == 0 ? cx : (DA == 1 ? cy : cz);
    const double* cu = DA == 0 ? cy : cx;
    const double* cw = DA == 2 ? cy : cz;
    double fu = (double)u, fw = (double)w;
#pragma unroll
    for (int a = 1 + 3 * DA; a < 4 + 3 * DA; ++a) {
        double r = cu[a] * fu + cw[a] * fw;
        if (!(lo[a] <= r && r <= hi[a])) return;
    }
    double vc[7], vr[7], vlo[7], vhi[7];
    int e = 0;
#pragma unroll
    for (int a = 0; a < NAXES; ++a) {
        if (a >= 1 && (a - 1) / 3 == DA) continue;
        vc[e] = cd[a];
        vr[e] = cu[a] * fu + cw[a] * fw;
        vlo[e] = lo[a];
        vhi[e] = hi[a];
        ++e;
    }
    double flo = (double)m0, fhi = (double)m1;
    /* As on the CPU, only long lines are narrowed; short ones are tested whole. */
    if (m1 - m0 + 1 >= PRUNE_MIN_LINE) {
#pragma unroll
        for (int x = 0; x < 7; ++x)
            if (vc[x] != 0.0) narrow(vc[x], vr[x], vlo[x], vhi[x], (double)n, &flo, &fhi);
        if (flo > fhi) return;
    }
    int mlo = (int)flo, mhi = (int)fhi;
    for (int m = mlo; m <= mhi; ++m) {
        double fm = (double)m;
        bool ok = true;
#pragma unroll
        for (int x = 0; x < 7; ++x) {
            double q = vc[x] * fm + vr[x];
            ok = ok && (vlo[x] <= q && q <= vhi[x]);
        }
        if (!ok) continue;
        int i = DA == 0 ? m : u;
        int j = DA == 0 ? u : (DA == 1 ? m : w);
        int k = DA == 2 ? m : w;
        atomicOr(grid + ((i64)k * H + j) * WW + (i >> 5), 1u << (i & 31));
    }
}

/* One thread per (triangle, line); offsets: exclusive prefix sum of count_lines, T + 1 long. */
extern "C" __global__ void surface_lines(const double* __restrict__ tris,
                                         const int* __restrict__ mesh_of,
                                         const i64* __restrict__ offsets, i64 T, i64 total,
                                         int D, int H, int W, int WW, u32* surf) {
    i64 g = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= total) return;
    /* Largest t with offsets[t] <= g: triangles without lines share their offset with the
       next one, so this lands on the triangle that owns line g. */
    i64 a0 = 0, a1 = T - 1;
    while (a0 < a1) {
        i64 mid = (a0 + a1 + 1) / 2;
        if (offsets[mid] <= g) a0 = mid; else a1 = mid - 1;
    }
    i64 t = a0;
    const double* tri = tris + 9 * t;
    int r[6];
    triangle_aabb(tri, D, H, W, r);
    double cx[NAXES], cy[NAXES], cz[NAXES], lo[NAXES], hi[NAXES];
    triangle_axes(tri, cx, cy, cz, lo, hi);
    int d = dominant_axis(cx[0], cy[0], cz[0]);
    int m0, m1, n, u0, u1, w0, w1;
    line_geometry(r, d, D, H, W, &m0, &m1, &n, &u0, &u1, &w0, &w1);
    i64 line = g - offsets[t];
    i64 nu = u1 - u0 + 1;
    int u = u0 + (int)(line % nu);
    int w = w0 + (int)(line / nu);
    u32* grid = surf + (i64)mesh_of[t] * D * H * WW;
    if (d == 0) surface_line<0>(cx, cy, cz, lo, hi, m0, m1, n, u, w, H, WW, grid);
    else if (d == 1) surface_line<1>(cx, cy, cz, lo, hi, m0, m1, n, u, w, H, WW, grid);
    else surface_line<2>(cx, cy, cz, lo, hi, m0, m1, n, u, w, H, WW, grid);
}

__device__ __forceinline__ u32 last_mask(int W, int WW) {
    int r = W - 32 * (WW - 1);
    return r == 32 ? 0xFFFFFFFFu : ((1u << r) - 1u);
}

/* Seeds: every free voxel on the grid's six faces. One thread per word. */
extern "C" __global__ void init_outside(const u32* __restrict__ surf, u32* __restrict__ out,
                                        i64 B, int D, int H, int W, int WW) {
    i64 g = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= B * D * H * WW) return;
    int w = (int)(g % WW);
    i64 row = g / WW;
    int j = (int)(row % H);
    int k = (int)((row / H) % D);
    u32 F = ~surf[g];
    if (w == WW - 1) F &= last_mask(W, WW);
    u32 seed = 0u;
    if (k == 0 || k == D - 1 || j == 0 || j == H - 1) seed = 0xFFFFFFFFu;
    else {
        if (w == 0) seed |= 1u;
        if (w == WW - 1) seed |= 1u << ((W - 1) & 31);
    }
    out[g] = F & seed;
}

/* x: one thread per row; runs of free bits that hold an outside bit fill completely: upwards
   with the carry of an addition, downwards the same on reversed bits; across words by carry. */
extern "C" __global__ void sweep_x(const u32* __restrict__ surf, u32* __restrict__ out,
                                   i64 B, int D, int H, int W, int WW, int* changed) {
    i64 r = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= B * D * H) return;
    const u32* s = surf + r * WW;
    u32* o = out + r * WW;
    u32 last = last_mask(W, WW);
    bool any = false;
    u32 carry = 0u;
    for (int w = 0; w < WW; ++w) {
        u32 F = ~s[w];
        if (w == WW - 1) F &= last;
        u32 old = o[w];
        u32 seed = old | (carry & F);
        u32 n = (((F + seed) ^ F) & F) | seed;
        carry = n >> 31;
        if (n != old) { o[w] = n; any = true; }
    }
    carry = 0u;
    for (int w = WW - 1; w >= 0; --w) {
        u32 F = ~s[w];
        if (w == WW - 1) F &= last;
        u32 old = o[w];
        u32 seed = __brev(old | ((carry << 31) & F));
        u32 Fr = __brev(F);
        u32 n = __brev((((Fr + seed) ^ Fr) & Fr) | seed);
        carry = n & 1u;
        if (n != old) { o[w] = n; any = true; }
    }
    if (any) *changed = 1;
}

/* y and z: one thread per column of words, 32 voxel columns at once. Column c starts at
   (c / per_group) * group_stride + c % per_group and steps `stride` words `count` times.
   y: groups are the (b, k) planes, WW columns each, H*WW apart, count H, stride WW.
   z: groups are the meshes, H*WW columns each, D*H*WW apart, count D, stride H*WW.
   The padding bits of `out` stay zero: only sweep_x moves a bit to another position, and it
   masks them. */
extern "C" __global__ void sweep_yz(const u32* __restrict__ surf, u32* __restrict__ out,
                                    i64 columns, i64 per_group, i64 group_stride, int count,
                                    i64 stride, int* changed) {
    i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= columns) return;
    i64 base = (c / per_group) * group_stride + c % per_group;
    bool any = false;
    u32 prev = out[base];
    for (int t = 1; t < count; ++t) {
        i64 p = base + t * stride;
        u32 old = out[p];
        u32 n = old | (prev & ~surf[p]);
        if (n != old) { out[p] = n; any = true; }
        prev = n;
    }
    prev = out[base + (i64)(count - 1) * stride];
    for (int t = count - 2; t >= 0; --t) {
        i64 p = base + t * stride;
        u32 old = out[p];
        u32 n = old | (prev & ~surf[p]);
        if (n != old) { out[p] = n; any = true; }
        prev = n;
    }
    if (any) *changed = 1;
}

/* Occupied = not outside (outside bits are free voxels only). One thread per voxel. */
extern "C" __global__ void unpack(const u32* __restrict__ outside, i64 n, int W, int WW,
                                  unsigned char* __restrict__ occ) {
    i64 g = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= n) return;
    int i = (int)(g % W);
    i64 row = g / W;
    occ[g] = ((outside[row * WW + (i >> 5)] >> (i & 31)) & 1u) ? 0 : 1;
}
