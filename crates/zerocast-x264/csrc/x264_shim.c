/* The few x264 calls zerocast makes (the guest agent's baseline and the
 * host's x264 backend), compiled against the installed <x264.h> so that
 * x264_param_t and x264_picture_t keep whatever layout this x264 version
 * gives them: Rust only sees an opaque encoder pointer, plain integers and
 * struct zc_x264_config, which is ours (mirrored in src/lib.rs).
 * Without ZC_HAVE_X264 (build.rs found no libx264) the same functions exist
 * and fail, so that zerocast builds with OpenH264 alone. */
#include <stddef.h>
#include <stdint.h>

#ifdef ZC_HAVE_X264
#include <x264.h>

/* zc_x264_encode's `constant` array is passed to x264 as it is. */
_Static_assert(X264_MBINFO_CONSTANT == 1, "x264's constant-macroblock flag moved");

/* Keep in step with `Config` in src/lib.rs (#[repr(C)]). */
struct zc_x264_config {
    int width;
    int height;
    int fps_num;
    int fps_den;
    /* An x264 preset name ("ultrafast", "superfast", ...). */
    const char *preset;
    /* Sliced threads; 0 = as many as x264 finds cores. */
    int threads;
    /* >= 0: every picture at this QP unless one is given with it (no
     * rate control); < 0: average bitrate under a VBV. */
    int qp;
    int bitrate_kbps;
    int vbv_buffer_kbit;
    /* 0 = keyframes only when asked for. */
    int keyint;
    /* Non-zero: pictures may come with the macroblocks that did not
     * change (zc_x264_encode's `constant`), which x264 then codes as skips
     * without analysing them. */
    int constant_blocks;
    /* >= 0: this sub-pixel refinement (x264's subme) instead of the
     * preset's. */
    int subpel_refine;
    /* Non-zero: P macroblocks may also be split into 8x8 partitions, as
     * well as the preset's. */
    int p8x8;
    /* Non-zero: uneven multi-hexagon motion search instead of the
     * preset's. */
    int umh;
};

/* Opens an encoder tuned for latency: preset as asked, tune zerolatency
 * (no B-frames, no lookahead, sliced threads: one frame in, one access
 * unit out), baseline profile (constrained baseline, which WebCodecs'
 * avc1.42 decoders take), Annex B with SPS/PPS before every keyframe, no
 * scene cut detection (keyframes are the caller's). Constant frame rate:
 * pts counts frames. The VUI says how zerocast-frame converts: BT.601
 * matrix, limited range, from sRGB pixels. NULL on failure. */
x264_t *zc_x264_open(const struct zc_x264_config *c)
{
    x264_param_t p;
    if (x264_param_default_preset(&p, c->preset, "zerolatency") < 0)
        return NULL;
    p.i_width = c->width;
    p.i_height = c->height;
    p.i_csp = X264_CSP_I420;
    p.i_fps_num = c->fps_num;
    p.i_fps_den = c->fps_den;
    p.b_vfr_input = 0;
    p.i_threads = c->threads > 0 ? c->threads : X264_THREADS_AUTO;
    p.b_sliced_threads = 1;
    p.i_keyint_max = c->keyint > 0 ? c->keyint : X264_KEYINT_MAX_INFINITE;
    p.i_scenecut_threshold = 0;
    p.analyse.b_mb_info = c->constant_blocks != 0;
    if (c->subpel_refine >= 0)
        p.analyse.i_subpel_refine = c->subpel_refine;
    if (c->p8x8)
        p.analyse.inter |= X264_ANALYSE_PSUB16x16;
    if (c->umh)
        p.analyse.i_me_method = X264_ME_UMH;
    if (c->qp >= 0) {
        /* Constant QP, each picture's forced (zc_x264_encode), every
         * macroblock at it, as OpenH264 codes them. x264 clamps a forced QP
         * to the range its I/P/B QP ratios span around the constant: ratios
         * of 512 (6 * log2 512 = 54 QPs) make that 0..51. Not CRF, which
         * would take any forced QP but runs its half-resolution motion
         * search over every whole picture, changed or not: 30% of x264's
         * time on typing and window drags. */
        p.rc.i_rc_method = X264_RC_CQP;
        p.rc.i_qp_constant = c->qp;
        p.rc.f_ip_factor = 512.0f;
        p.rc.f_pb_factor = 512.0f;
    } else {
        p.rc.i_rc_method = X264_RC_ABR;
        p.rc.i_bitrate = c->bitrate_kbps;
        p.rc.i_vbv_max_bitrate = c->bitrate_kbps;
        p.rc.i_vbv_buffer_size = c->vbv_buffer_kbit;
    }
    p.vui.i_colorprim = 1;  /* BT.709 */
    p.vui.i_transfer = 13;  /* sRGB (IEC 61966-2-1) */
    p.vui.i_colmatrix = 6;  /* BT.601 (SMPTE 170M) */
    p.vui.b_fullrange = 0;
    p.b_repeat_headers = 1;
    p.b_annexb = 1;
    p.i_log_level = X264_LOG_WARNING;
    if (x264_param_apply_profile(&p, "baseline") < 0)
        return NULL;
    return x264_encoder_open(&p);
}

/* A running encoder's average bitrate and VBV (opened with a bitrate:
 * x264 cannot turn the VBV on later). 0 on success, negative if x264
 * refused. */
int zc_x264_set_bitrate(x264_t *enc, int bitrate_kbps, int vbv_max_kbps,
                        int vbv_buffer_kbit)
{
    x264_param_t p;
    x264_encoder_parameters(enc, &p);
    p.rc.i_bitrate = bitrate_kbps;
    p.rc.i_vbv_max_bitrate = vbv_max_kbps;
    p.rc.i_vbv_buffer_size = vbv_buffer_kbit;
    return x264_encoder_reconfig(enc, &p);
}

/* Called by x264 when it is done with a picture's `constant` array, at
 * the end of zc_x264_encode (no lookahead, no frame threads): the array is
 * the caller's, so nothing is freed, but x264 then forgets it. */
static void zc_keep(void *constant)
{
    (void)constant;
}

/* Encodes one I420 picture, at `qp` if >= 0 (else as the rate control
 * decides). `constant`, if not NULL (and the encoder was opened with
 * constant_blocks), has one byte per macroblock in raster order, 1 where
 * the picture is the same as the previous one. Returns the access unit's
 * size (0 if the encoder held the picture back) and points *out at it:
 * x264 lays a frame's NAL units out back to back, and they stay valid until
 * the next call. Negative on error. */
int zc_x264_encode(x264_t *enc, const uint8_t *y, const uint8_t *u,
                   const uint8_t *v, int y_stride, int uv_stride, int64_t pts,
                   int force_idr, int qp, const uint8_t *constant,
                   uint8_t **out, int *keyframe)
{
    x264_picture_t in, pic_out;
    x264_nal_t *nals;
    int nal_count;
    int size;

    x264_picture_init(&in);
    in.img.i_csp = X264_CSP_I420;
    in.img.i_plane = 3;
    /* x264 only reads the input planes. */
    in.img.plane[0] = (uint8_t *)y;
    in.img.plane[1] = (uint8_t *)u;
    in.img.plane[2] = (uint8_t *)v;
    in.img.i_stride[0] = y_stride;
    in.img.i_stride[1] = uv_stride;
    in.img.i_stride[2] = uv_stride;
    in.i_pts = pts;
    in.i_type = force_idr ? X264_TYPE_IDR : X264_TYPE_AUTO;
    in.i_qpplus1 = qp >= 0 ? qp + 1 : X264_QP_AUTO;
    /* x264 only reads the flags (b_mb_info_update is off). */
    in.prop.mb_info = (uint8_t *)constant;
    in.prop.mb_info_free = constant ? zc_keep : NULL;

    size = x264_encoder_encode(enc, &nals, &nal_count, &in, &pic_out);
    if (size < 0)
        return size;
    *out = size > 0 ? nals[0].p_payload : NULL;
    *keyframe = size > 0 && pic_out.b_keyframe;
    return size;
}

/* The x264 API version this was built against. */
int zc_x264_build(void)
{
    return X264_BUILD;
}

void zc_x264_close(x264_t *enc)
{
    x264_encoder_close(enc);
}

int zc_x264_available(void)
{
    return 1;
}

#else
/* Built without libx264 (build.rs found none): every encoder fails to
 * open, and zc_x264_available says why. */
typedef struct x264_t x264_t;
struct zc_x264_config;

x264_t *zc_x264_open(const struct zc_x264_config *c)
{
    (void)c;
    return NULL;
}

int zc_x264_set_bitrate(x264_t *enc, int bitrate_kbps, int vbv_max_kbps,
                        int vbv_buffer_kbit)
{
    (void)enc, (void)bitrate_kbps, (void)vbv_max_kbps, (void)vbv_buffer_kbit;
    return -1;
}

int zc_x264_encode(x264_t *enc, const uint8_t *y, const uint8_t *u,
                   const uint8_t *v, int y_stride, int uv_stride, int64_t pts,
                   int force_idr, int qp, const uint8_t *constant,
                   uint8_t **out, int *keyframe)
{
    (void)enc, (void)y, (void)u, (void)v, (void)y_stride, (void)uv_stride;
    (void)pts, (void)force_idr, (void)qp, (void)constant, (void)out;
    (void)keyframe;
    return -1;
}

int zc_x264_build(void)
{
    return 0;
}

void zc_x264_close(x264_t *enc)
{
    (void)enc;
}

int zc_x264_available(void)
{
    return 0;
}
#endif
