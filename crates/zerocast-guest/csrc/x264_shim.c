/* The few x264 calls the guest's baseline encoder makes, compiled against
 * the installed <x264.h> so that x264_param_t and x264_picture_t keep
 * whatever layout this x264 version gives them: Rust only sees an opaque
 * encoder pointer and plain integers. */
#include <stddef.h>
#include <stdint.h>
#include <x264.h>

/* Opens an encoder set up like helix's software baseline (GStreamer
 * x264enc speed-preset=ultrafast tune=zerolatency, baseline profile): no
 * B-frames, no lookahead, one frame in and one access unit out, Annex B
 * with SPS/PPS before every keyframe. Constant frame rate: pts counts
 * frames. keyint 0 = keyframes only when asked for. NULL on failure. */
x264_t *zc_x264_open(int width, int height, int fps_num, int fps_den,
                     int bitrate_kbps, int keyint)
{
    x264_param_t p;
    if (x264_param_default_preset(&p, "ultrafast", "zerolatency") < 0)
        return NULL;
    p.i_width = width;
    p.i_height = height;
    p.i_csp = X264_CSP_I420;
    p.i_fps_num = fps_num;
    p.i_fps_den = fps_den;
    p.b_vfr_input = 0;
    p.i_keyint_max = keyint > 0 ? keyint : X264_KEYINT_MAX_INFINITE;
    p.rc.i_rc_method = X264_RC_ABR;
    p.rc.i_bitrate = bitrate_kbps;
    p.rc.i_vbv_max_bitrate = bitrate_kbps;
    p.rc.i_vbv_buffer_size = bitrate_kbps; /* one second */
    p.b_repeat_headers = 1;
    p.b_annexb = 1;
    p.i_log_level = X264_LOG_WARNING;
    if (x264_param_apply_profile(&p, "baseline") < 0)
        return NULL;
    return x264_encoder_open(&p);
}

/* Encodes one I420 picture. Returns the access unit's size (0 if the
 * encoder held the picture back) and points *out at it: x264 lays a
 * frame's NAL units out back to back, and they stay valid until the next
 * call. Negative on error. */
int zc_x264_encode(x264_t *enc, uint8_t *y, uint8_t *u, uint8_t *v,
                   int y_stride, int uv_stride, int64_t pts, int force_idr,
                   uint8_t **out, int *keyframe)
{
    x264_picture_t in, pic_out;
    x264_nal_t *nals;
    int nal_count;
    int size;

    x264_picture_init(&in);
    in.img.i_csp = X264_CSP_I420;
    in.img.i_plane = 3;
    in.img.plane[0] = y;
    in.img.plane[1] = u;
    in.img.plane[2] = v;
    in.img.i_stride[0] = y_stride;
    in.img.i_stride[1] = uv_stride;
    in.img.i_stride[2] = uv_stride;
    in.i_pts = pts;
    in.i_type = force_idr ? X264_TYPE_IDR : X264_TYPE_AUTO;

    size = x264_encoder_encode(enc, &nals, &nal_count, &in, &pic_out);
    if (size < 0)
        return size;
    *out = size > 0 ? nals[0].p_payload : NULL;
    *keyframe = size > 0 && pic_out.b_keyframe;
    return size;
}

void zc_x264_close(x264_t *enc)
{
    x264_encoder_close(enc);
}
