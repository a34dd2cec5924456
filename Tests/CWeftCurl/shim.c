#include "CWeftCurl.h"

int weft_curl_multi_callbacks(CURLM *multi, weft_curl_socket_fn socket, weft_curl_timer_fn timer, void *userp) {
    if (curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket) != CURLM_OK) return -1;
    if (curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, userp) != CURLM_OK) return -1;
    if (curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer) != CURLM_OK) return -1;
    if (curl_multi_setopt(multi, CURLMOPT_TIMERDATA, userp) != CURLM_OK) return -1;
    return 0;
}

int weft_curl_easy_prepare(CURL *easy, const char *url, weft_curl_write_fn write, void *userdata) {
    if (curl_easy_setopt(easy, CURLOPT_URL, url) != CURLE_OK) return -1;
    if (curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write) != CURLE_OK) return -1;
    if (curl_easy_setopt(easy, CURLOPT_WRITEDATA, userdata) != CURLE_OK) return -1;
    if (curl_easy_setopt(easy, CURLOPT_PRIVATE, userdata) != CURLE_OK) return -1;
    if (curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK) return -1;
    if (curl_easy_setopt(easy, CURLOPT_PROXY, "") != CURLE_OK) return -1;
    return 0;
}

void *weft_curl_easy_userdata(CURL *easy) {
    void *userdata = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &userdata);
    return userdata;
}

long weft_curl_response_code(CURL *easy) {
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
}
