// tile.wgsl — the tiled family's workgroup tile of a GEMM, shared by conv2d_tiled.wgsl,
// linear_tiled.wgsl, packed_conv_tiled.wgsl and packed_linear_tiled.wgsl: the tile's override
// constants, the two staged operand slices and the rank-1 updates of an invocation's 4×4 block.
// Not a shader on its own: those files import it.
//
// Bindings (group 0): none.
//
// A workgroup of WG = TILE_M·TILE_N/16 invocations computes a TILE_M × TILE_N output tile; the
// reduction runs in slices of TILE_K staged into a_tile [TILE_K][TILE_M] and b_tile
// [TILE_K][TILE_N], each row padded by one vec4 against bank conflicts. The host sets all four
// from the adapter's limits (`Tile::constants`); the defaults are what naga and other tools
// see. Invocation (tx, ty) owns rows 4·ty .. 4·ty + 3 and columns 4·tx .. 4·tx + 3 of the tile.

override TILE_M: u32 = 64u;
override TILE_N: u32 = 64u;
override TILE_K: u32 = 16u;
override WG: u32 = 256u;

var<workgroup> a_tile: array<vec4f, TILE_K * (TILE_M / 4u + 1u)>;
var<workgroup> b_tile: array<vec4f, TILE_K * (TILE_N / 4u + 1u)>;

// a_tile[row][m] = v
fn put_a(row: u32, m: u32, v: f32) {
    a_tile[row * (TILE_M / 4u + 1u) + m / 4u][m % 4u] = v;
}

// b_tile[row][col] = v
fn put_b(row: u32, col: u32, v: f32) {
    b_tile[row * (TILE_N / 4u + 1u) + col / 4u][col % 4u] = v;
}

// The invocation's 4×4 block += the staged slice's product (16 multiply-adds per 2 workgroup
// loads).
fn mma(acc: ptr<function, array<vec4f, 4>>, tx: u32, ty: u32) {
    for (var k = 0u; k < TILE_K; k++) {
        let a = a_tile[k * (TILE_M / 4u + 1u) + ty];
        let bv = b_tile[k * (TILE_N / 4u + 1u) + tx];
        (*acc)[0] += a.x * bv;
        (*acc)[1] += a.y * bv;
        (*acc)[2] += a.z * bv;
        (*acc)[3] += a.w * bv;
    }
}
