// The sessions of one Server by id (ids increase from 1, never reused). Plain bookkeeping:
// it only sets a session's `id`, so the unit tests (c_src/tests/registry_test.cpp) run it on
// a stand-in type without llama.cpp. Not thread-safe by itself: the Server's mu_ guards it.
#pragma once

#include <cstddef>
#include <map>
#include <utility>

namespace lls {

template <class S>
class SessionRegistry {
  public:
    using Map = std::map<int, S>;

    // Stores `s` under a fresh id (written to s.id) and returns that id.
    int add(S s) {
        const int id = next_id_++;
        s.id = id;
        sessions_.emplace(id, std::move(s));
        return id;
    }
    // Null when there is none (also for 0, a stateless task's "session"). Pointers stay valid
    // until that session is erased.
    S * find(int id) {
        auto it = sessions_.find(id);
        return it == sessions_.end() ? nullptr : &it->second;
    }
    const S * find(int id) const {
        auto it = sessions_.find(id);
        return it == sessions_.end() ? nullptr : &it->second;
    }
    bool   contains(int id) const { return sessions_.count(id) > 0; }
    bool   erase(int id) { return sessions_.erase(id) > 0; }
    size_t size() const { return sessions_.size(); }
    void   clear() { sessions_.clear(); }   // the id counter goes on

    // The sessions in id order (range-for gives `S &`).
    template <class It, class Ref>
    class iterator_of {
      public:
        explicit iterator_of(It it) : it_(it) {}
        Ref operator*() const { return it_->second; }
        iterator_of & operator++() {
            ++it_;
            return *this;
        }
        bool operator!=(const iterator_of & o) const { return it_ != o.it_; }

      private:
        It it_;
    };
    using iterator = iterator_of<typename Map::iterator, S &>;
    using const_iterator = iterator_of<typename Map::const_iterator, const S &>;
    iterator       begin() { return iterator(sessions_.begin()); }
    iterator       end() { return iterator(sessions_.end()); }
    const_iterator begin() const { return const_iterator(sessions_.begin()); }
    const_iterator end() const { return const_iterator(sessions_.end()); }

  private:
    Map sessions_;
    int next_id_ = 1;
};

}  // namespace lls
